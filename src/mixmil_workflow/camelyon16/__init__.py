"""Camelyon16 histopathology branch (paper Section 4.4, Table 3) on the DSMIL patch features."""

from .archive import ArchiveError, FeatureArchive, convert_to_h5ad, read_slide_table
from .demo import DemoSpec, write_demo_archive
from .preprocess import Preprocessing, SplitBags, assign_splits, fit_preprocessing, load_split

__all__ = [
    "ArchiveError",
    "DemoSpec",
    "FeatureArchive",
    "Preprocessing",
    "SplitBags",
    "assign_splits",
    "convert_to_h5ad",
    "fit_preprocessing",
    "load_split",
    "read_slide_table",
    "write_demo_archive",
]
