"""Parse-time checks of the model lists in the config (``simulation.models``, ``costs.models``,
``camelyon16.models``, ``datasets.<name>.models``, ``sweep.grid``): one wording for every branch, naming
the config field, the model and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def check_model_names(
    field: str,
    names: Iterable[str],
    models: Mapping[str, Mapping],
    allowed_types: Iterable[str] | None = None,
    purpose: str = "",
    fix: str = "add it there or remove it",
) -> list[str]:
    """Every name must be defined under ``models:`` and, when ``allowed_types`` is given, of one of those
    types (``purpose`` says why, e.g. "the cost table covers the minibatch-trained MIL models")."""
    names = list(names)
    allowed = tuple(allowed_types) if allowed_types is not None else None
    for name in names:
        if name not in models:
            raise ValueError(
                f"config: {field} lists {name!r}, which is not defined under models: {fix} (defined: {sorted(models)})"
            )
        kind = models[name].get("type")
        if allowed is not None and kind not in allowed:
            raise ValueError(
                f"config: {field} lists {name!r} of type {kind!r}; {purpose or 'allowed types'}: {', '.join(allowed)}"
            )
    return names
