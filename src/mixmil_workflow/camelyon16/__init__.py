"""Camelyon16 histopathology branch (paper Section 4.4, Table 3) on the DSMIL patch features.

Names are imported lazily: the conversion and preprocessing jobs run in the torch-free data environment
(envs/data.yaml) and must not import the models.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ArchiveError": "archive",
    "FeatureArchive": "archive",
    "convert_to_h5ad": "archive",
    "read_slide_table": "archive",
    "DemoSpec": "demo",
    "write_demo_archive": "demo",
    "Preprocessing": "preprocess",
    "SplitBags": "preprocess",
    "assign_splits": "preprocess",
    "fit_preprocessing": "preprocess",
    "load_split": "preprocess",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
