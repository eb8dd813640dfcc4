"""BBBC021 raw formats (../shared/reference/data_sources.md section 2): the metadata CSVs, plate zips and
the nucleus-location table, read into the tables the microscopy branch works on.

* ``BBBC021_v1_image.csv``: one row per field of view, the file name of each channel (DAPI ``w1``,
  Tubulin ``w2``, Actin ``w4``), ``Image_PathName_*`` = ``Week1/Week1_22123`` (its last part names the
  plate, its zip and the zip's folder), well, replicate, compound, concentration. The site is parsed
  from the file name (``_s([1-4])_``).
* ``BBBC021_v1_moa.csv``: ``compound, concentration, moa`` for the mechanism-of-action subset.
* ``BBBC021_v1_images_<Plate>.zip``: one top folder ``<Plate>/`` with the TIFFs.
* nucleus centres (Ljosa et al. 2013): a SQLite database with a ``Nuclei`` table keyed by
  ``TableNumber, ImageNumber, ObjectNumber`` with ``Nuclei_Location_Center_X/Y`` (CellProfiler names;
  the reference marks them as to be confirmed on the real file, so a missing column is a clear error).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

CHANNELS = ("DAPI", "Tubulin", "Actin")
IMAGE_COLUMNS = (
    "TableNumber",
    "ImageNumber",
    "Image_FileName_DAPI",
    "Image_PathName_DAPI",
    "Image_FileName_Tubulin",
    "Image_PathName_Tubulin",
    "Image_FileName_Actin",
    "Image_PathName_Actin",
    "Image_Metadata_Plate_DAPI",
    "Image_Metadata_Well_DAPI",
    "Replicate",
    "Image_Metadata_Compound",
    "Image_Metadata_Concentration",
)
MOA_COLUMNS = ("compound", "concentration", "moa")
NUCLEUS_COLUMNS = ("TableNumber", "ImageNumber", "Nuclei_Location_Center_X", "Nuclei_Location_Center_Y")
SITE_PATTERN = re.compile(r"_s([1-9]\d*)_")


class MicroscopyError(ValueError):
    """Invalid BBBC021 input; the message names the file, the field and the fix."""


def _read_csv(path: str | Path, columns: Iterable[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise MicroscopyError(f"{what} {path} does not exist; run the download (or demo) rule first")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MicroscopyError(
            f"{what} {path}: columns {missing} are missing (found {list(table.columns)[:15]}); "
            "is this the BBBC021 v1 file?"
        )
    return table


def read_image_table(
    image_csv: str | Path, moa_csv: str | Path, exclude_moas: Iterable[str] = ("DMSO",)
) -> pd.DataFrame:
    """Fields of view of the MoA subset: ``plate, well, site, compound, concentration, moa, replicate,
    table_number, image_number`` and ``file_<channel>`` (path inside the plate zip)."""
    images = _read_csv(image_csv, IMAGE_COLUMNS, "BBBC021 image table")
    moas = _read_csv(moa_csv, MOA_COLUMNS, "BBBC021 MoA table")
    table = pd.DataFrame(
        {
            # The plate as its zip and top folder are named (Week1_22123): the last part of the path column,
            # whatever form Image_Metadata_Plate_DAPI takes.
            "plate": images["Image_PathName_DAPI"].astype(str).str.rstrip("/").str.split("/").str[-1],
            "well": images["Image_Metadata_Well_DAPI"].astype(str),
            "compound": images["Image_Metadata_Compound"].astype(str),
            "concentration": pd.to_numeric(images["Image_Metadata_Concentration"], errors="coerce"),
            "replicate": images["Replicate"],
            "table_number": images["TableNumber"].astype(int),
            "image_number": images["ImageNumber"].astype(int),
        }
    )
    for channel in CHANNELS:
        folder = images[f"Image_PathName_{channel}"].astype(str).str.split("/").str[-1]
        table[f"file_{channel}"] = folder + "/" + images[f"Image_FileName_{channel}"].astype(str)
    sites = images["Image_FileName_DAPI"].astype(str).str.extract(SITE_PATTERN)[0]
    if sites.isna().any():
        bad = images.loc[sites.isna(), "Image_FileName_DAPI"].iloc[0]
        raise MicroscopyError(f"BBBC021 image table {image_csv}: no site (_s<n>_) in file name {bad!r}")
    table["site"] = sites.astype(int)
    moas = moas.assign(concentration=pd.to_numeric(moas["concentration"], errors="coerce"))
    if moas.duplicated(["compound", "concentration"]).any():
        raise MicroscopyError(f"BBBC021 MoA table {moa_csv}: a (compound, concentration) pair appears twice")
    # Float concentrations are joined on rounded values: the two CSVs print them independently.
    key = ["compound", "conc_key"]
    table["conc_key"] = table["concentration"].round(9)
    moas["conc_key"] = moas["concentration"].round(9)
    table = table.merge(moas[[*key, "moa"]], on=key, how="inner").drop(columns="conc_key")
    table = table[~table["moa"].isin(list(exclude_moas))]
    if table.empty:
        raise MicroscopyError(
            f"BBBC021: no field of view of {image_csv} has a MoA in {moa_csv} (after excluding {list(exclude_moas)})"
        )
    return table.sort_values(["plate", "well", "site"]).reset_index(drop=True)


def bag_id(plate: pd.Series | str, well: pd.Series | str):
    return plate + "_" + well


def well_table(images: pd.DataFrame) -> pd.DataFrame:
    """One row per well (the bags): ``bag, plate, well, compound, concentration, moa, replicate, n_sites``."""
    wells = (
        images.groupby(["plate", "well"], sort=True)
        .agg(
            compound=("compound", "first"),
            concentration=("concentration", "first"),
            moa=("moa", "first"),
            replicate=("replicate", "first"),
            n_sites=("site", "nunique"),
        )
        .reset_index()
    )
    wells.insert(0, "bag", bag_id(wells["plate"], wells["well"]))
    return wells


def add_structures(wells: pd.DataFrame, compound_csv: str | Path) -> pd.DataFrame:
    """The compounds' SMILES from ``BBBC021_v1_compound.csv`` as a ``smiles`` column (empty where absent)."""
    structures = _read_csv(compound_csv, ("compound", "smiles"), "BBBC021 compound table")
    smiles = structures.drop_duplicates("compound").set_index("compound")["smiles"]
    return wells.assign(smiles=wells["compound"].map(smiles).fillna(""))


def held_out_plates(wells: pd.DataFrame, n_repeats: int, seed: int) -> pd.DataFrame:
    """The paper's split: per repeat, one plate per compound holds that compound's test wells; repeats
    hold out different plates (Section 4.4). Adds ``split_r<k>`` columns (``train``/``test``)."""
    rng = np.random.default_rng(seed)
    out = wells.copy()
    columns = {f"split_r{r}": np.full(len(wells), "train", dtype=object) for r in range(n_repeats)}
    for compound, rows in wells.groupby("compound", sort=True):
        plates = np.array(sorted(rows["plate"].unique()))
        if len(plates) < 2:
            raise MicroscopyError(
                f"BBBC021: compound {compound!r} is on one plate only ({plates[0]}); holding out a plate would "
                "leave no training well. Drop it from the MoA table or add plates"
            )
        order = rng.permutation(plates)
        for r in range(n_repeats):
            test_plate = order[r % len(order)]
            columns[f"split_r{r}"][
                (wells["compound"] == compound).to_numpy() & (wells["plate"] == test_plate).to_numpy()
            ] = "test"
    for name, values in columns.items():
        out[name] = values
    return out


def read_nucleus_locations(database: str | Path, images: pd.DataFrame) -> pd.DataFrame:
    """Nucleus centres of the given fields of view from the Ljosa et al. SQLite (``Nuclei`` table):
    ``plate, well, site, image_number, x, y``, one row per nucleus."""
    database = Path(database)
    if not database.exists():
        raise MicroscopyError(f"nucleus locations {database} do not exist; run the download (or demo) rule first")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(Nuclei)")]
        if not columns:
            raise MicroscopyError(
                f"nucleus locations {database}: no table 'Nuclei' (the Ljosa et al. 2013 SQLite has one)"
            )
        missing = [c for c in NUCLEUS_COLUMNS if c not in columns]
        if missing:
            raise MicroscopyError(
                f"nucleus locations {database}, table Nuclei: columns {missing} are missing "
                f"(found {columns[:12]}...); the branch reads CellProfiler's nucleus-centre columns"
            )
        query = f"SELECT {', '.join(NUCLEUS_COLUMNS)} FROM Nuclei"
        nuclei = pd.read_sql_query(query, connection)
    nuclei.columns = ["table_number", "image_number", "x", "y"]
    keys = images[["table_number", "image_number", "plate", "well", "site"]]
    located = nuclei.merge(keys, on=["table_number", "image_number"], how="inner")
    without = len(keys) - located[["table_number", "image_number"]].drop_duplicates().shape[0]
    if without == len(keys):
        raise MicroscopyError(
            f"nucleus locations {database}: no nucleus belongs to a field of view of the image table "
            "(TableNumber, ImageNumber do not match); is it the Ljosa et al. 2013 database of BBBC021 v1?"
        )
    located = located.dropna(subset=["x", "y"])
    return (
        located[["plate", "well", "site", "image_number", "x", "y"]]
        .sort_values(["plate", "well", "site", "y", "x"], kind="stable")
        .reset_index(drop=True)
    )
