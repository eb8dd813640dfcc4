"""Single-cell crops: a ``box`` x ``box`` window (DeepProfiler's 96 px for BBBC021) of the three
illumination-corrected channels (DAPI, Tubulin, Actin) around every nucleus centre of a plate.

A plate's crops go to one HDF5 file (dataset ``crops``, uint8, (cells, 3, box, box), gzip-compressed
in chunks of cells) with a per-crop table in the same order (``plate, well, site, x, y, bag, compound,
concentration, moa, replicate``). 8 bits per channel is what the SimCLR reference featurised (DeepProfiler
PNG crops). Nuclei whose box crosses the image border are left out and counted.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mixmil_workflow.io import atomic_path, save_tsv_gz
from mixmil_workflow.microscopy.bbbc021 import CHANNELS, MicroscopyError, bag_id
from mixmil_workflow.microscopy.illumination import correct, read_tiff

CROP_COLUMNS = ["plate", "well", "site", "x", "y", "bag", "compound", "concentration", "moa", "replicate"]


def crop_plate(
    zip_path: str | Path,
    functions: Mapping[str, np.ndarray],
    images: pd.DataFrame,
    nuclei: pd.DataFrame,
    box: int = 96,
) -> tuple[np.ndarray, pd.DataFrame, int]:
    """Crops of one plate: (uint8 (n, 3, box, box), per-crop table, number of nuclei at the border)."""
    half = box // 2
    crops, rows, at_border = [], [], 0
    by_image = dict(tuple(nuclei.groupby(["well", "site"], sort=False)))
    with zipfile.ZipFile(zip_path) as archive:
        for view in tqdm(images.itertuples(index=False), total=len(images), desc=Path(zip_path).name, mininterval=10):
            centres = by_image.get((view.well, view.site))
            if centres is None:
                continue
            stack = np.stack(
                [correct(read_tiff(archive, getattr(view, f"file_{c}"), str(zip_path)), functions[c]) for c in CHANNELS]
            )
            if stack.shape[1:] != functions[CHANNELS[0]].shape:
                raise MicroscopyError(f"{zip_path}: {view.file_DAPI} is {stack.shape[1:]}, the plate's fields differ")
            height, width = stack.shape[1:]
            eight_bit = np.round(stack * 255).astype(np.uint8)
            for x, y in centres[["x", "y"]].to_numpy():
                # the pixel holding the centre, then a box with it at (half, half)
                cx, cy = int(np.floor(x)), int(np.floor(y))
                if cy - half < 0 or cx - half < 0 or cy + half > height or cx + half > width:
                    at_border += 1
                    continue
                crops.append(eight_bit[:, cy - half : cy + half, cx - half : cx + half])
                rows.append((view.plate, view.well, view.site, x, y))
    table = pd.DataFrame(rows, columns=["plate", "well", "site", "x", "y"])
    meta = images.drop_duplicates(["plate", "well"])[["plate", "well", "compound", "concentration", "moa", "replicate"]]
    table = table.merge(meta, on=["plate", "well"], how="left", validate="many_to_one")
    table.insert(5, "bag", bag_id(table["plate"], table["well"]))
    array = np.stack(crops) if crops else np.zeros((0, len(CHANNELS), box, box), dtype=np.uint8)
    return array, table[CROP_COLUMNS], at_border


def save_crops(h5_path: str | Path, table_path: str | Path, crops: np.ndarray, table: pd.DataFrame) -> None:
    import h5py

    with atomic_path(h5_path) as tmp, h5py.File(tmp, "w") as store:
        chunk = (min(max(len(crops), 1), 256), *crops.shape[1:])
        store.create_dataset("crops", data=crops, chunks=chunk if len(crops) else None, compression="gzip")
        store.attrs["channels"] = list(CHANNELS)
    save_tsv_gz(table_path, table)


def read_crops(h5_path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    import h5py

    with h5py.File(h5_path, "r") as store:
        return store["crops"][start:stop]


def n_crops(h5_path: str | Path) -> int:
    import h5py

    with h5py.File(h5_path, "r") as store:
        return store["crops"].shape[0]


def read_crop_table(path: str | Path) -> pd.DataFrame:
    """A plate's per-crop table with plate, well and bag as text."""
    return pd.read_csv(path, sep="\t", dtype={"plate": str, "well": str, "bag": str})
