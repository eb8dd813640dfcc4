"""A small Camelyon16 feature archive in the DSMIL layout, for the offline demo and the tests.

Patches are ReLU-like features (softplus of a random projection) of a few latent tissue programmes,
with a per-slide offset (stain/scanner variation). Tumour slides carry a minority of tumour patches,
shifted along one latent direction, in a fraction of the slide drawn per slide: many slides have few
tumour patches, as Camelyon16's micro-metastases, which is where attention beats mean pooling. The
patch-level truth (not part of the DSMIL archive) is written beside it for instance-level evaluation.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path, save_tsv_gz


@dataclass(frozen=True)
class DemoSpec:
    n_train_normal: int = 40
    n_train_tumor: int = 30
    n_test_normal: int = 24
    n_test_tumor: int = 16
    min_patches: int = 40
    max_patches: int = 160
    n_features: int = 512
    n_programmes: int = 8
    tumor_fraction: tuple[float, float] = (0.02, 0.25)
    tumor_shift: float = 3.0
    slide_sd: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping) -> DemoSpec:
        values = dict(config)
        if "tumor_fraction" in values:
            values["tumor_fraction"] = tuple(values["tumor_fraction"])
        return cls(**values)


def _slide_names(spec: DemoSpec, rng: np.random.Generator) -> list[tuple[str, int]]:
    train = [(f"normal_{i + 1:03d}", 0) for i in range(spec.n_train_normal)]
    train += [(f"tumor_{i + 1:03d}", 1) for i in range(spec.n_train_tumor)]
    test_labels = rng.permutation([0] * spec.n_test_normal + [1] * spec.n_test_tumor)
    test = [(f"test_{i + 1:03d}", int(label)) for i, label in enumerate(test_labels)]
    return train + test


def write_demo_archive(zip_path: str | Path, truth_path: str | Path, spec: DemoSpec, seed: int) -> None:
    """Write the archive (zip, DSMIL layout, features with 4 decimals as DSMIL's ``to_csv``) and the
    patch truth (TSV: ``slide``, ``patch``, ``tumor``)."""
    rng = np.random.default_rng(seed)
    if spec.min_patches < 1 or spec.max_patches < spec.min_patches:
        raise ValueError(f"demo: need 1 <= min_patches <= max_patches, got {spec.min_patches}, {spec.max_patches}")
    projection = rng.standard_normal((spec.n_programmes, spec.n_features)) / np.sqrt(spec.n_programmes)
    bias = rng.normal(-0.5, 0.5, spec.n_features)
    tumour_direction = np.zeros(spec.n_programmes)
    tumour_direction[0] = 1.0
    slides = _slide_names(spec, rng)
    columns = [str(c) for c in range(spec.n_features)]
    truth_frames = []
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for slide, label in slides:
            n = int(rng.integers(spec.min_patches, spec.max_patches + 1))
            tumour = np.zeros(n, dtype=bool)
            if label:
                share = rng.uniform(*spec.tumor_fraction)
                tumour[rng.choice(n, max(1, round(share * n)), replace=False)] = True
            z = rng.standard_normal((n, spec.n_programmes)) + spec.slide_sd * rng.standard_normal(spec.n_programmes)
            z += spec.tumor_shift * tumour[:, None] * tumour_direction
            features = np.logaddexp(0.0, z @ projection + bias + 0.3 * rng.standard_normal((n, spec.n_features)))
            folder = "1-tumor" if label else "0-normal"
            archive.writestr(
                f"Camelyon16/{folder}/{slide}.csv",
                pd.DataFrame(features, columns=columns).to_csv(index=False, float_format="%.4f"),
            )
            truth_frames.append(pd.DataFrame({"slide": slide, "patch": np.arange(n), "tumor": tumour.astype(int)}))
        # Bag lists as DSMIL's compute_feats writes them: header "0,label", paths under datasets/, shuffled.
        listing = pd.DataFrame(
            {
                "0": [f"datasets/Camelyon16/{'1-tumor' if y else '0-normal'}/{s}.csv" for s, y in slides],
                "label": [y for _, y in slides],
            }
        )
        archive.writestr("Camelyon16/Camelyon16.csv", _csv(listing.iloc[rng.permutation(len(listing))]))
        for label, name in ((0, "0-normal"), (1, "1-tumor")):
            archive.writestr(f"Camelyon16/{name}.csv", _csv(listing[listing["label"] == label]))
    save_tsv_gz(truth_path, pd.concat(truth_frames, ignore_index=True))


def _csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()
