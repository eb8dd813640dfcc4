"""A spatial slide simulation for SMMILe (issue 7): slides as patch grids with a known tumour mask.

Each slide is a tissue region on an ``H x W`` patch grid (an ellipse with a rough, noise-perturbed
border). Normal tissue is a mosaic of ``n_tissue_types`` smooth regions, each with its own mean
embedding. A positive slide holds 1 to ``n_tumours`` tumour regions: ellipses of random radius, aspect
and orientation with rough borders, clipped to the tissue, so tumour burden ranges from a few patches to
a large share of the slide. A tumour patch's embedding is shifted by ``signal`` along a tumour direction
(unit noise along it, so one patch alone is ambiguous). Both classes also hold isolated *mimics*: normal
patches that look exactly like tumour patches but stand alone, so a model that reads a patch's neighbours
(SMMILe's convolution on the grid) can tell them from tumour, and one that scores patches one by one
cannot. The patch-level truth (``patch_label``) is kept for the localisation metrics.

Three task families (``task``), as SMMILe's paper evaluates: ``binary`` (tumour or not); ``multiclass``
(subtyping: ``n_categories`` tumour types, each with its own direction; a tumour slide holds regions of
one type, its label the type 1..K, normal slides 0); ``multilabel`` (a positive slide holds regions of a
non-empty random subset of the types; its label one 0/1 column per type, all zero for a normal slide).
Patch labels are 0 (normal) or the type 1..K; a mimic looks like one random type.

Embeddings are standardised with the training patches' statistics. Everything is drawn from one seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

TASKS = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class SpatialParams:
    n_train: int = 120
    n_test: int = 60
    grid_size: tuple[int, int] = (20, 32)  # slide grid side, uniform in this range
    n_features: int = 32
    positive_fraction: float = 0.5
    n_tumours: int = 3  # a positive slide has 1..n_tumours tumour regions
    tumour_radius: tuple[float, float] = (1.0, 5.0)  # patches
    signal: float = 1.5  # tumour shift along the tumour direction, in noise standard deviations
    n_tissue_types: int = 4
    tissue_contrast: float = 1.0  # spread of the tissue types' mean embeddings
    mimic_rate: float = 0.015  # isolated tumour-like normal patches, as a fraction of normal patches
    min_patches: int = 80
    task: str = "binary"  # binary, multiclass or multilabel
    n_categories: int = 3  # tumour types of the multiclass and multilabel tasks

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpatialData:
    x: np.ndarray  # (patches, features) float32, standardised with training statistics
    offsets: np.ndarray  # (slides + 1,) patches of slide s are rows offsets[s]:offsets[s+1]
    coords: np.ndarray  # (patches, 2) int (row, column) on the slide's grid
    patch_label: np.ndarray  # (patches,) 0 = normal, k = tumour (type k; binary: 1)
    mimic: np.ndarray  # (patches,) 1 = isolated tumour-like normal patch
    slide_label: np.ndarray  # (slides,) 1 = holds tumour / the type 0..K; multilabel (slides, K) 0/1
    split: np.ndarray  # (slides,) "train" / "test"
    task: str = "binary"

    @property
    def categories(self) -> list[int]:
        """The positive categories (patch label values) whose localisation is scored."""
        if self.task == "binary":
            return [1]
        return list(range(1, (self.slide_label.shape[1] if self.slide_label.ndim == 2 else int(self.n_types)) + 1))

    @property
    def n_types(self) -> int:
        return int(max(1, self.patch_label.max(initial=0), self.slide_label.max(initial=0)))

    def slide_categories(self, slides: np.ndarray) -> np.ndarray:
        """(slides, K) 0/1: which positive categories each slide holds."""
        labels = self.slide_label[slides]
        if self.task == "multilabel":
            return labels.astype(int)
        return np.stack([labels == k for k in self.categories], 1).astype(int)

    @property
    def n_slides(self) -> int:
        return len(self.slide_label)

    def save(self, path: str | Path) -> None:
        from mixmil_workflow.io import save_npz

        save_npz(path, **{**asdict(self), "task": np.array(self.task)})

    @classmethod
    def load(cls, path: str | Path) -> SpatialData:
        with np.load(path, allow_pickle=False) as f:
            missing = sorted(set(cls.__dataclass_fields__) - set(f.files) - {"task"})
            if missing:
                raise ValueError(f"{path} is not a spatial simulation (missing arrays {missing})")
            fields = {k: f[k] for k in cls.__dataclass_fields__ if k in f.files}
            fields["task"] = str(fields.get("task", "binary"))
            return cls(**fields)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return field / (field.std() + 1e-12)


def _blob(rng, shape, centre, radius, aspect, roughness=0.25) -> np.ndarray:
    """An ellipse of the given radius, aspect ratio and random orientation, with a noise-perturbed border."""
    rows, cols = np.indices(shape, dtype=float)
    angle = rng.uniform(0, np.pi)
    dr, dc = rows - centre[0], cols - centre[1]
    u = (dr * np.cos(angle) + dc * np.sin(angle)) / radius
    v = (-dr * np.sin(angle) + dc * np.cos(angle)) / (radius * aspect)
    return np.sqrt(u**2 + v**2) + roughness * _smooth_field(rng, shape, 1.5) < 1.0


def _tissue(rng, size: int, min_patches: int) -> np.ndarray:
    for _ in range(100):
        centre = (size / 2 + rng.normal(0, 1), size / 2 + rng.normal(0, 1))
        mask = _blob(rng, (size, size), centre, 0.45 * size, rng.uniform(0.6, 1.0), roughness=0.3)
        mask = ndimage.binary_fill_holes(mask)
        labels, n = ndimage.label(mask)
        if n > 1:  # keep the largest piece: one tissue section per slide
            sizes = ndimage.sum(mask, labels, range(1, n + 1))
            mask = labels == 1 + int(np.argmax(sizes))
        if mask.sum() >= min_patches:
            return mask
    raise ValueError(f"cannot draw a tissue region of {min_patches} patches on a {size} x {size} grid")


def _slide(rng, params: SpatialParams, present: list[int], tissue_means, directions):
    """One slide holding tumour regions of the types in ``present`` (1..K; empty: a normal slide)."""
    size = int(rng.integers(params.grid_size[0], params.grid_size[1] + 1))
    tissue = _tissue(rng, size, params.min_patches)
    types = np.argmax(np.stack([_smooth_field(rng, tissue.shape, 2.5) for _ in tissue_means]), 0)
    tumour = np.zeros(tissue.shape, dtype=np.int8)  # 0 normal, k type
    if present:
        rows, cols = np.nonzero(tissue)
        n_regions = max(len(present), int(rng.integers(1, params.n_tumours + 1)))
        for region in range(n_regions):
            if region < len(present) or len(present) == 1:  # one type: no draw (the binary task's stream)
                kind = present[min(region, len(present) - 1)]
            else:
                kind = present[int(rng.integers(len(present)))]
            k = rng.integers(len(rows))
            radius = rng.uniform(*params.tumour_radius)
            blob = _blob(rng, tissue.shape, (rows[k], cols[k]), radius, rng.uniform(0.5, 1.0))
            blob[rows[k], cols[k]] = True  # at least the seed patch
            tumour[blob & tissue] = kind
    # isolated mimics: normal patches with no tumour within two patches
    near_tumour = ndimage.binary_dilation(tumour > 0, iterations=2)
    candidates = tissue & ~near_tumour
    mimic = candidates & (rng.uniform(size=tissue.shape) < params.mimic_rate)
    mimic &= ndimage.convolve(mimic.astype(int), np.ones((3, 3), int), mode="constant") == 1  # alone
    rows, cols = np.nonzero(tissue)
    x = tissue_means[types[rows, cols]] + rng.normal(size=(len(rows), directions.shape[1]))
    kind = tumour[rows, cols].astype(int)
    is_mimic = mimic[rows, cols]
    look = kind.copy()
    look[is_mimic] = 1 if len(directions) == 1 else rng.integers(1, len(directions) + 1, size=int(is_mimic.sum()))
    x[look > 0] += params.signal * directions[look[look > 0] - 1]
    coords = np.stack([rows, cols], 1)
    return x, coords, kind, is_mimic


def simulate_spatial(params: SpatialParams, seed: int) -> SpatialData:
    if not 0 < params.positive_fraction < 1:
        raise ValueError(f"positive_fraction must lie in (0, 1), got {params.positive_fraction}")
    if params.grid_size[0] > params.grid_size[1] or params.grid_size[0] < 8:
        raise ValueError(f"grid_size must be (min, max) with 8 <= min <= max, got {params.grid_size}")
    if params.task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {params.task!r}")
    n_types = 1 if params.task == "binary" else params.n_categories
    if params.task != "binary" and n_types < 2:
        raise ValueError(f"the {params.task} task needs n_categories >= 2, got {params.n_categories}")
    rng = np.random.default_rng(seed)
    q = params.n_features
    directions = rng.normal(size=(n_types, q))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tissue_means = params.tissue_contrast * rng.normal(size=(params.n_tissue_types, q)) / np.sqrt(q) * 2
    n = params.n_train + params.n_test
    positive = np.zeros(n, dtype=bool)
    for part, count in ((slice(0, params.n_train), params.n_train), (slice(params.n_train, n), params.n_test)):
        k = int(round(params.positive_fraction * count))
        positive[part] = rng.permutation(np.r_[np.ones(k), np.zeros(count - k)]).astype(bool)
    present: list[list[int]] = []
    for i, pos in enumerate(positive):
        if not pos:
            present.append([])
        elif params.task == "multilabel":
            chosen = []
            while not chosen:
                chosen = [k for k in range(1, n_types + 1) if rng.uniform() < 0.5]
            present.append(chosen)
        else:  # binary: type 1; multiclass: the types in turn, so every split holds each type
            present.append([1 + (int(positive[: i + 1].sum()) - 1) % n_types])
    if params.task == "multilabel":
        labels = np.array([[int(k in p) for k in range(1, n_types + 1)] for p in present], dtype=np.int8)
    else:
        labels = np.array([p[0] if p else 0 for p in present], dtype=np.int8)
    slides = [_slide(rng, params, p, tissue_means, directions) for p in present]
    sizes = np.array([len(s[0]) for s in slides])
    offsets = np.r_[0, np.cumsum(sizes)]
    x = np.concatenate([s[0] for s in slides])
    n_train_patches = offsets[params.n_train]
    mean, sd = x[:n_train_patches].mean(0), x[:n_train_patches].std(0)
    return SpatialData(
        x=((x - mean) / sd).astype(np.float32),
        offsets=offsets.astype(np.int64),
        coords=np.concatenate([s[1] for s in slides]).astype(np.int64),
        patch_label=np.concatenate([s[2] for s in slides]).astype(np.int8),
        mimic=np.concatenate([s[3] for s in slides]).astype(np.int8),
        slide_label=labels,
        split=np.array(["train"] * params.n_train + ["test"] * params.n_test),
        task=params.task,
    )
