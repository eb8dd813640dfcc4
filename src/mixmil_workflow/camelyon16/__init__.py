"""Camelyon16 histopathology branch (paper Section 4.4, Table 3) on the DSMIL patch features.

Names are imported lazily: the conversion and preprocessing jobs run in the torch-free data environment
(envs/data.yaml) and must not import the models.
"""

from __future__ import annotations

from mixmil_workflow.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
