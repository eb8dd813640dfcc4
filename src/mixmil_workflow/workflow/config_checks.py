"""Parse-time checks of the model lists in the config (``simulation.models``, ``costs.models``,
``camelyon16.models``, ``datasets.<name>.models``, ``sweep.grid``): one wording for every branch, naming
the config field, the model and the fix."""

from __future__ import annotations

import difflib
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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``choices``, or nothing: one wording for every key check."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown_keys(node, schema: Mapping, path: str):
    """(key path, key, allowed keys) of every key the schema does not allow, depth first."""
    if not isinstance(node, Mapping) or not isinstance(schema, Mapping):
        return
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        if key in properties:
            yield from _unknown_keys(value, properties[key], where)
        elif isinstance(extra, Mapping):
            yield from _unknown_keys(value, extra, where)
        elif extra is False:
            yield where, key, sorted(properties)


def check_config(config: Mapping, schema_path) -> None:
    """The config against its JSON schema, before Snakemake's own validation (which fills the defaults):
    an unknown key gets the closest allowed one, and any other violation one line with the key path
    first, instead of a dump of the whole schema."""
    import jsonschema
    import yaml

    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    for where, key, allowed in _unknown_keys(config, schema, ""):
        hint = did_you_mean(key, allowed)
        raise ValueError(f"config: {where}: unknown key {key!r}; {hint}allowed here: {', '.join(allowed)}")
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(config))
    if error is not None:
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        raise ValueError(f"config: {where}: {error.message} (see config/config.schema.yaml)")
