"""Lazy exports of a package: its names are imported on first use, so light modules (what Snakemake reads
when it parses the workflow, the torch-free jobs) do not pay for the models' imports."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module relative to the
    package) when ``name`` is first asked for. Keep ``exports`` a literal ``_EXPORTS`` dict in the package's
    ``__init__``: the workflow's code digests read it (workflow.code)."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
