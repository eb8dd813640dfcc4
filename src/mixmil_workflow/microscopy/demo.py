"""Generated BBBC021-like raw data for the offline demo, in the real sources' formats.

Written as the real downloads (../shared/reference/data_sources.md section 2), so the same rules read both:

* ``BBBC021_v1_images_<Plate>.zip``: one top folder ``<Plate>/`` with 16-bit single-channel TIFFs named
  ``<Plate>_<Well>_s<site>_w<1|2|4><GUID>.tif`` (``w1`` DAPI, ``w2`` Tubulin, ``w4`` Actin), smaller
  than the real 1280 x 1024 fields but at the real scale (cells of ~45 px in 96 px crops).
* ``BBBC021_v1_image.csv``, ``BBBC021_v1_moa.csv``, ``BBBC021_v1_compound.csv`` with the real columns.
* ``ljosa_jbiomolscreen_2013.sqlite``: the nucleus centres in a ``Nuclei`` table (CellProfiler names).

Planted biology: each compound belongs to one of a few real MoAs and gives its responding cells that
MoA's phenotype (nucleus size and brightness, microtubule and actin patterns); the other cells of the well
look like DMSO controls, so a well is a bag with a treatment-dependent fraction of informative cells.
Every well, whatever its compound, also holds a few artefact "cells" (bright debris, blurred cells) that
a good model should ignore. Each plate and channel has its own smooth illumination field (what the
illumination correction removes). ``truth.tsv.gz`` records every nucleus's kind.
"""

from __future__ import annotations

import io
import sqlite3
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path, save_tsv_gz
from mixmil_workflow.microscopy.bbbc021 import IMAGE_COLUMNS

CHANNEL_CODES = {"DAPI": 1, "Tubulin": 2, "Actin": 4}
# Real BBBC021 MoAs and compounds (data_sources.md 2.1); the phenotypes are the demo's invention.
DEMO_COMPOUNDS = {
    "Microtubule destabilizers": ("nocodazole", "vincristine"),
    "Actin disruptors": ("cytochalasin B", "latrunculin B"),
    "DNA damage": ("etoposide", "mitomycin C"),
    "Eg5 inhibitors": ("AZ-C", "AZ138"),
}
PHENOTYPES = {
    "Microtubule destabilizers": "tubulin_diffuse",
    "Actin disruptors": "actin_puncta",
    "DNA damage": "large_nucleus",
    "Eg5 inhibitors": "mitotic_arrest",
}
OUTSIDE_MOA_SUBSET = "compound outside the MoA subset"  # wells the MoA join must drop
WELLS = [f"{row}{col:02d}" for row in "BCDEFG" for col in range(2, 12)]  # the 60 interior wells


@dataclass(frozen=True)
class DemoSpec:
    plates: Sequence[str] = ("Week1_22123", "Week1_22141", "Week1_22161")
    concentrations: Sequence[float] = (1.0, 3.0)
    responder_fractions: Sequence[float] = (0.6, 0.85)  # per concentration
    wells_per_treatment: int = 2  # per plate
    dmso_wells: int = 2
    sites: int = 2
    height: int = 256
    width: int = 320
    cells_per_site: int = 8
    artefact_fraction: float = 0.08
    compounds: Mapping[str, Sequence[str]] = field(default_factory=lambda: DEMO_COMPOUNDS)

    @classmethod
    def from_config(cls, section: Mapping) -> DemoSpec:
        fields = cls.__dataclass_fields__
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in fields})


def _illumination(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth multiplicative field: radial fall-off from an off-centre peak plus a linear gradient."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * rng.uniform(0.35, 0.65), width * rng.uniform(0.35, 0.65)
    radius2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * (height**2 + width**2))
    gradient = rng.uniform(-0.15, 0.15) * (xx / width - 0.5)
    return (1.0 - rng.uniform(0.3, 0.5) * radius2 + gradient).astype(np.float32)


def _blob(dy, dx, ry, rx, angle, edge=1.5):
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / rx, (-dx * sin + dy * cos) / ry
    r = np.sqrt(u**2 + v**2)
    return 1.0 / (1.0 + np.exp((r - 1.0) * max(rx, ry) / edge)), r


def _render_cell(canvas: np.ndarray, cy: float, cx: float, kind: str, rng: np.random.Generator) -> None:
    """Add one cell (3 channels, arbitrary units) to ``canvas`` around (cy, cx)."""
    half = 48
    y0, y1 = int(max(cy - half, 0)), int(min(cy + half, canvas.shape[1]))
    x0, x1 = int(max(cx - half, 0)), int(min(cx + half, canvas.shape[2]))
    dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = dy - cy, dx - cx
    angle = rng.uniform(0, np.pi)
    theta = np.arctan2(dy, dx)
    if kind == "debris":  # a small, very bright irregular DAPI speck with no cell around it
        speck, _ = _blob(dy, dx, rng.uniform(3, 6), rng.uniform(5, 9), angle, edge=0.7)
        canvas[0, y0:y1, x0:x1] += 6.0 * speck * (1 + 0.5 * np.cos(3 * theta))
        canvas[1, y0:y1, x0:x1] += 0.8 * speck
        return
    big = kind == "large_nucleus"
    arrest = kind == "mitotic_arrest"
    cell_r = rng.uniform(20, 26) * (1.25 if big else 0.7 if arrest else 1.0)
    nucleus_r = rng.uniform(8, 10.5) * (1.5 if big else 0.8 if arrest else 1.0)
    body, rb = _blob(dy, dx, cell_r * rng.uniform(0.7, 0.9), cell_r, angle)
    nucleus, _ = _blob(dy, dx, nucleus_r * rng.uniform(0.8, 1.0), nucleus_r, angle)
    dapi = (2.2 if arrest else 1.6 if big else 1.0) * nucleus * (1 + 0.15 * rng.standard_normal(nucleus.shape))
    if kind == "tubulin_diffuse":
        tubulin = 0.35 * body
    elif arrest:  # a monoastral ring of microtubules around the condensed chromatin
        tubulin = 1.4 * np.exp(-(((np.sqrt(dy**2 + dx**2) - nucleus_r - 4) / 2.5) ** 2)) * body
    else:  # radial filaments from the centre
        n_filaments = rng.integers(7, 12)
        phase = rng.uniform(0, 2 * np.pi)
        tubulin = body * (0.3 + 0.7 * np.clip(np.cos(n_filaments * theta + phase), 0, 1) ** 4) * (1.2 - 0.6 * rb)
    if kind == "actin_puncta":
        actin = 0.15 * body
        for _ in range(rng.integers(6, 11)):
            py, px = rng.uniform(-0.8, 0.8, size=2) * cell_r
            actin += 1.6 * np.exp(-((dy - py) ** 2 + (dx - px) ** 2) / 6.0) * body
    else:  # cortical actin ring at the cell edge
        actin = 0.2 * body + 0.9 * np.exp(-(((rb - 0.95) / 0.12) ** 2))
    layers = np.stack([dapi, tubulin, actin])
    if kind == "blurred":  # an out-of-focus cell: every channel smeared
        from scipy.ndimage import gaussian_filter

        layers = gaussian_filter(layers, sigma=(0, 5, 5)) * 1.8
    canvas[:, y0:y1, x0:x1] += layers


def _centres(rng: np.random.Generator, n: int, height: int, width: int, margin: int = 50, spacing: float = 30):
    centres: list[tuple[float, float]] = []
    for _ in range(200 * n):
        if len(centres) == n:
            break
        y, x = rng.uniform(margin, height - margin), rng.uniform(margin, width - margin)
        if all((y - a) ** 2 + (x - b) ** 2 >= spacing**2 for a, b in centres):
            centres.append((y, x))
    return centres


def _tiff_bytes(image: np.ndarray) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, photometric="minisblack")
    return buffer.getvalue()


def _plate_layout(spec: DemoSpec, rng: np.random.Generator) -> list[tuple[str, str, float, str]]:
    """(well, compound, concentration, moa) of one plate, wells in a random order."""
    treatments = [
        (compound, conc, moa)
        for moa, compounds in spec.compounds.items()
        for compound in compounds
        for conc in spec.concentrations
        for _ in range(spec.wells_per_treatment)
    ]
    treatments += [("DMSO", 0.0, "DMSO")] * spec.dmso_wells + [(OUTSIDE_MOA_SUBSET, 1.0, "")]
    if len(treatments) > len(WELLS):
        raise ValueError(f"demo: {len(treatments)} wells per plate do not fit the {len(WELLS)} interior wells")
    wells = sorted(rng.permutation(len(WELLS))[: len(treatments)])
    order = rng.permutation(len(treatments))
    return [(WELLS[w], *treatments[k]) for w, k in zip(wells, order, strict=True)]


def write_demo(out_dir: str | Path, spec: DemoSpec, seed: int) -> dict[str, Path]:
    """Write the demo's raw files into ``out_dir``; returns their paths by name."""
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_rows, nuclei_rows, truth_rows = [], [], []
    concentration_rank = {c: k for k, c in enumerate(spec.concentrations)}
    paths = {}
    for table_number, plate in enumerate(spec.plates, start=1):
        week = plate.split("_")[0]
        fields = {ch: _illumination(rng, spec.height, spec.width) for ch in CHANNEL_CODES}
        zip_path = out_dir / f"BBBC021_v1_images_{plate}.zip"
        with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for well, compound, concentration, moa in _plate_layout(spec, rng):
                phenotype = PHENOTYPES.get(moa)
                responders = spec.responder_fractions[concentration_rank.get(concentration, 0)] if phenotype else 0.0
                for site in range(1, spec.sites + 1):
                    canvas = np.zeros((3, spec.height, spec.width), dtype=np.float32)
                    centres = _centres(rng, spec.cells_per_site, spec.height, spec.width)
                    for obj, (cy, cx) in enumerate(centres, start=1):
                        u = rng.uniform()
                        if u < spec.artefact_fraction:
                            kind = "debris" if rng.uniform() < 0.5 else "blurred"
                            render = kind
                        elif rng.uniform() < responders:
                            kind, render = "responder", phenotype
                        else:
                            kind, render = "control_like", "normal"
                        _render_cell(canvas, cy, cx, render, rng)
                        # Nucleus centres as a segmentation reports them: off by a pixel or so.
                        x, y = cx + rng.normal(0, 0.7), cy + rng.normal(0, 0.7)
                        nuclei_rows.append((table_number, len(image_rows) + 1, obj, x, y))
                        truth_rows.append((plate, well, site, x, y, kind))
                    names = {}
                    for k, (channel, code) in enumerate(CHANNEL_CODES.items()):
                        signal = 300.0 + 9000.0 * canvas[k] * rng.uniform(0.9, 1.1)
                        image = rng.poisson(np.clip(signal * fields[channel], 0, None)).clip(0, 65535).astype(np.uint16)
                        guid = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63))))
                        names[channel] = f"{plate}_{well}_s{site}_w{code}{guid.upper()}.tif"
                        archive.writestr(f"{plate}/{names[channel]}", _tiff_bytes(image))
                    image_rows.append(
                        (table_number, len(image_rows) + 1)
                        + sum(((names[ch], f"{week}/{plate}") for ch in CHANNEL_CODES), ())
                        + (plate, well, table_number, compound, concentration)
                    )
        paths[plate] = zip_path
    images = pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS))
    moa = pd.DataFrame(
        [(c, conc, m) for m, cs in spec.compounds.items() for c in cs for conc in spec.concentrations]
        + [("DMSO", 0.0, "DMSO")],
        columns=["compound", "concentration", "moa"],
    )
    compounds = pd.DataFrame({"compound": sorted(set(images["Image_Metadata_Compound"]))})
    compounds["smiles"] = ""  # the demo has no structures; the branch does not read them
    for name, frame in (("image", images), ("moa", moa), ("compound", compounds)):
        paths[name] = out_dir / f"BBBC021_v1_{name}.csv"
        with atomic_path(paths[name]) as tmp:
            frame.to_csv(tmp, index=False)
    paths["nuclei"] = out_dir / "ljosa_jbiomolscreen_2013.sqlite"
    with atomic_path(paths["nuclei"]) as tmp:
        with sqlite3.connect(tmp) as db:
            db.execute(
                "CREATE TABLE Nuclei (TableNumber INTEGER, ImageNumber INTEGER, ObjectNumber INTEGER, "
                "Nuclei_Location_Center_X REAL, Nuclei_Location_Center_Y REAL)"
            )
            db.executemany("INSERT INTO Nuclei VALUES (?, ?, ?, ?, ?)", nuclei_rows)
        db.close()
    paths["truth"] = out_dir / "truth.tsv.gz"
    truth = pd.DataFrame(truth_rows, columns=["plate", "well", "site", "x", "y", "kind"])
    save_tsv_gz(paths["truth"], truth)
    return paths
