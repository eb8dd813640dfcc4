"""Camelyon16 raw slides to the spatial study's input: per slide, the tissue patches on their grid, their
ResNet50 features and their lesion labels; then every slide in one :class:`SpatialData` (PCA fitted on
the training slides' patches, as the microscopy branch does with its cell embeddings).

The official release (or the demo in its layout, :mod:`.slide_demo`) is read as it is: slides under
``training/normal``, ``training/tumor`` and ``testing/images``; lesion XML inside each split's
``lesion_annotations.zip``; test slide labels from ``testing/reference.csv`` (no header).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.camelyon16.slides.tiling import (
    LAYOUT,
    Lesions,
    SlideError,
    lesion_classes,
    open_slide,
    patch_labels,
    read_lesion_xml,
    read_patches,
    tile_coordinates,
)

# ImageNet statistics: the normalisation of timm's ResNet50 weights (and of CLAM-style patch features).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def slide_table(root: str | Path, classes: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Every slide of a release under ``root``: name, folder, split, slide label, path.

    Labels: Camelyon16 (``classes`` unset), 1 for the training ``tumor`` folder and the test slides that
    ``reference.csv`` calls Tumor. A multi-class dataset (``classes``: annotation group -> category): a
    training tumour slide takes the category with the largest annotated area in its split's
    ``lesion_annotations.zip``, a test slide the category ``reference.csv`` names (a group name, or Normal)."""
    root = Path(root)
    rows = []
    for folder, sub in LAYOUT.items():
        for path in sorted((root / sub).glob("*.tif")):
            rows.append({"slide": path.stem, "folder": folder, "path": str(path)})
    if not rows:
        raise SlideError(f"{root}: no slides under {', '.join(LAYOUT.values())}; is this the CAMELYON16 folder?")
    table = pd.DataFrame(rows)
    table["split"] = np.where(table["folder"] == "test", "test", "train")
    has_test = (table["split"] == "test").any()
    reference = read_reference(root / "testing/reference.csv", classes) if has_test else {}
    missing = sorted(set(table.loc[table["split"] == "test", "slide"]) - set(reference))
    if missing:
        raise SlideError(f"{root / 'testing/reference.csv'}: no label for test slide(s) {missing[:5]}")

    def training_label(name: str) -> int:
        if not classes:
            return 1
        areas = lesions_from_zip(root / "training/lesion_annotations.zip", name, classes).areas()
        if not areas:
            raise SlideError(f"{root / 'training/lesion_annotations.zip'}: tumour slide {name} has no annotation of "
                             f"the classes {sorted(lesion_classes(classes))}; its category cannot be told")  # fmt: skip
        return max(areas, key=areas.get)

    table["label"] = [
        (training_label(name) if folder == "tumor" else 0) if folder != "test" else reference[name]
        for folder, name in zip(table["folder"], table["slide"], strict=True)
    ]
    return table


def release_slide_paths(root: str | Path, demo: Mapping | None = None) -> dict[str, tuple[str, str]]:
    """Slide name -> (slide path, its split's folder ``training`` or ``testing``), known before any job runs:
    from the demo's settings (``demo``: SlideDemoParams fields; the files need not exist yet), or by listing
    the release under ``root``."""
    if demo is not None:
        from mixmil_workflow.camelyon16.slides.demo import SlideDemoParams, slide_names

        names = slide_names(SlideDemoParams(**demo))
        rows = [(n, f"{root}/{LAYOUT[folder]}/{n}.tif", folder) for folder, group in names.items() for n in group]
    else:
        table = slide_table(root)
        rows = list(zip(table["slide"], table["path"], table["folder"], strict=True))
    return {name: (path, LAYOUT[folder].split("/")[0]) for name, path, folder in rows}


def release_classes(classes: Mapping[str, int] | None, demo: Mapping | None = None) -> dict[str, int] | None:
    """The annotation group -> category map a release is read with (None: Camelyon16's tumour groups):
    the config's ``classes`` for a local release; for the generated one (``demo``: SlideDemoParams
    fields) those checked against its groups, or its own groups numbered 1.. (a subtyping demo)."""
    if demo is None:
        return dict(classes) if classes else None
    from mixmil_workflow.camelyon16.slides.demo import SlideDemoParams, demo_lesion_classes

    return demo_lesion_classes(SlideDemoParams(**demo), classes)


def read_reference(path: str | Path, classes: Mapping[str, int] | None = None) -> dict[str, int]:
    """Test slide labels from the official ``reference.csv`` (no header; name, Tumor/Normal, ...); with
    ``classes``, column 2 names a class (an annotation group) or Normal."""
    path = Path(path)
    if not path.exists():
        raise SlideError(f"{path} does not exist; the test slides' labels come from testing/reference.csv")
    table = pd.read_csv(path, header=None, dtype=str)
    if table.shape[1] < 2:
        raise SlideError(f"{path}: expected at least two columns (slide, Tumor/Normal), found {table.shape[1]}")
    kind = table[1].str.strip().str.lower()
    codes = {"normal": 0, **(lesion_classes(classes) if classes else {"tumor": 1})}
    bad = table.index[~kind.isin(list(codes))]
    if len(bad):
        names = " or ".join(sorted(codes)) if classes else "Tumor or Normal"
        raise SlideError(f"{path}, line {bad[0] + 1}, column 2: {table[1].iloc[bad[0]]!r} is not {names}")
    return dict(zip(table[0].str.strip(), kind.map(codes).astype(int), strict=True))


def lesions_from_zip(archive: str | Path, slide: str, classes: Mapping[str, int] | None = None) -> Lesions:
    """The lesions of ``slide`` from a split's ``lesion_annotations.zip`` (none when it has no XML);
    ``classes``: annotation group -> category (default: Camelyon16's tumour groups -> 1)."""
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as z:
            members = {Path(m).name: m for m in z.namelist() if m.lower().endswith(".xml")}
            if f"{slide}.xml" not in members:
                return Lesions({}, [])
            data = z.read(members[f"{slide}.xml"])
    except zipfile.BadZipFile as err:
        raise SlideError(f"{archive}: not a zip archive ({err}); expected lesion_annotations.zip") from err
    return read_lesion_xml(f"{archive}:{members[f'{slide}.xml']}", data, classes)


def build_patch_encoder(checkpoint: str | Path | None, seed: int):
    """timm's ResNet50 without its classifier (2048-d after global pooling) in eval mode: weights from a
    local timm ResNet50 file (``.safetensors`` or ``.pth``/``.bin`` state dict, e.g. the ImageNet weights),
    or a seeded random initialisation offline."""
    import timm
    import torch

    torch.manual_seed(seed)
    if checkpoint is None:
        return timm.create_model("resnet50", pretrained=False, num_classes=0).eval()
    path = Path(checkpoint)
    if not path.exists():
        raise SlideError(f"ResNet50 weights {path} do not exist; set smmile.camelyon16.checkpoint to a timm file")
    try:
        model = timm.create_model(
            "resnet50", pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
        )
    except Exception as err:  # timm/torch raise several types for a file that is not ResNet50 weights
        raise SlideError(f"{path}: not timm ResNet50 weights ({type(err).__name__}: {err})") from err
    return model.eval()


def slide_patch_features(
    slide_path: str | Path,
    lesions: Lesions,
    encoder,
    patch_size: int = 224,
    level: int = 0,
    min_tissue: float = 0.5,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """Tissue patches of one slide: ``coords`` (row, col), ``label`` (1 / 0 / -1 excluded) and
    ``features`` (patches, 2048) float32."""
    import torch

    slide = open_slide(slide_path)
    coords = tile_coordinates(slide, patch_size, level, min_tissue)
    labels = patch_labels(coords, lesions, patch_size * slide.level_downsamples[level])
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).to(device)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1).to(device)
    encoder = encoder.to(device)
    features = np.zeros((len(coords), encoder.num_features), np.float32)
    patches = read_patches(slide, coords, patch_size, level)
    with torch.inference_mode():
        for start in range(0, len(coords), batch_size):
            batch = np.stack([next(patches)[1] for _ in range(min(batch_size, len(coords) - start))])
            x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            features[start : start + len(batch)] = encoder((x - mean) / std).float().cpu().numpy()
    return {"coords": coords, "label": labels.astype(np.int8), "features": features}


def assemble_spatial(slides: pd.DataFrame, patch_files: Mapping[str, str | Path], n_components: int, seed: int):
    """One :class:`SpatialData` from the per-slide patch files (slides in ``slides`` order; slides without
    tissue patches are dropped with a message): PCA to ``n_components`` fitted on the training patches,
    then standardised with the training statistics. Returns it and the table of the slides kept."""
    from sklearn.decomposition import PCA

    from mixmil_workflow.simulate.spatial import SpatialData

    parts, kept = [], []
    for row in slides.itertuples():
        with np.load(patch_files[row.slide]) as f:
            if len(f["coords"]) == 0:
                print(f"{row.slide}: no tissue patches; left out")
                continue
            parts.append({k: f[k] for k in ("coords", "label", "features")})
            kept.append(row.Index)
    table = slides.loc[kept]
    split = table["split"].to_numpy()
    if not (split == "train").any() or not (split == "test").any():
        raise SlideError("the slides with tissue must include training and test slides")
    sizes = np.array([len(p["coords"]) for p in parts])
    offsets = np.r_[0, np.cumsum(sizes)]
    features = np.concatenate([p["features"] for p in parts])
    train_rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in np.flatnonzero(split == "train")])
    n = min(n_components, len(train_rows), features.shape[1])
    pca = PCA(n, random_state=seed).fit(features[train_rows])
    x = pca.transform(features)
    mu, sd = x[train_rows].mean(0), x[train_rows].std(0)
    x = (x - mu) / np.where(sd > 0, sd, 1.0)
    print(f"{len(table)} slides, {len(x)} patches; PCA {features.shape[1]} -> {n} "
          f"({pca.explained_variance_ratio_.sum():.1%} of the training variance)")  # fmt: skip
    data = SpatialData(
        x=x.astype(np.float32),
        offsets=offsets,
        coords=np.concatenate([p["coords"] for p in parts]),
        patch_label=np.concatenate([p["label"] for p in parts]).astype(np.int64),
        mimic=np.zeros(len(x), np.int64),
        slide_label=table["label"].to_numpy(np.int64),
        split=split.astype(str),
        task="multiclass" if table["label"].max() > 1 else "binary",  # one category per slide
    )
    return data, table
