"""Camelyon16 whole-slide images to patches with grid coordinates and patch-level tumour labels.

The official slides are pyramidal TIFFs (read with tiffslide, an OpenSlide-compatible pure-Python reader
from PyPI); lesions are ASAP XML polygons in level-0 pixels. Tiling keeps the patches of a fixed size
whose tissue share (saturation above an Otsu threshold on a thumbnail, the usual CLAM-style mask) reaches
``min_tissue``. A patch's label is 1 when at least ``min_tumour`` of it lies inside tumour polygons and
outside exclusion polygons, -1 when it is mostly inside an exclusion polygon (ignored by the metrics, as
the reference evaluation ignores label -1), else 0.

Multi-class annotations (a subtyping dataset: one class per annotation group, e.g. ``LUAD`` / ``LUSC``):
``classes`` maps each group name to its category 1..K; a patch takes the category covering most of it
(at least ``min_tumour``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Group names differ between sources: "Tumor"/"Exclusion" in some ASAP files, "_0"/"_1" (tumour) and
# "_2" (exclusion) in others (shared/reference/data_sources.md section 4.3).
TUMOUR_GROUPS = {"tumor", "tumour", "_0", "_1", "metastases"}
EXCLUSION_GROUPS = {"exclusion", "_2", "none"}


# Slide folders of the official release (and of the demo in its layout), by the slides' name prefix.
LAYOUT = {"normal": "training/normal", "tumor": "training/tumor", "test": "testing/images"}


class SlideError(ValueError):
    """A slide or annotation file that cannot be used, with the file and the fix in the message."""


@dataclass
class Lesions:
    regions: dict[int, list[np.ndarray]]  # category (1..K) -> polygons, (vertices, 2) level-0 (x, y)
    exclusion: list[np.ndarray]

    @property
    def tumour(self) -> list[np.ndarray]:
        """Every lesion polygon, whatever its category."""
        return [poly for k in sorted(self.regions) for poly in self.regions[k]]

    def areas(self) -> dict[int, float]:
        """Category -> total polygon area (level-0 pixels, shoelace formula)."""

        def area(poly: np.ndarray) -> float:
            x, y = poly[:, 0], poly[:, 1]
            return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))

        return {k: sum(area(p) for p in polys) for k, polys in self.regions.items()}


def lesion_classes(classes: Mapping[str, int] | None) -> dict[str, int]:
    """Annotation group (lower case) -> category: the Camelyon16 tumour groups -> 1 by default."""
    if not classes:
        return dict.fromkeys(TUMOUR_GROUPS, 1)
    out = {str(name).strip().lower(): int(k) for name, k in classes.items()}
    bad = {name: k for name, k in out.items() if k < 1}
    if bad:
        raise SlideError(f"annotation classes {bad}: categories are 1, 2, ... (0 is normal tissue)")
    return out


def read_lesion_xml(path: str | Path, data: bytes | None = None, classes: Mapping[str, int] | None = None) -> Lesions:
    """Lesion polygons by category and exclusion polygons of an ASAP annotation file (level-0 pixel
    coordinates); ``classes``: annotation group -> category (default: Camelyon16's tumour groups -> 1);
    ``data``: the file's bytes when it lives inside an archive (``path`` then names it in messages)."""
    groups = lesion_classes(classes)
    path = Path(path)
    try:
        root = ET.fromstring(data) if data is not None else ET.parse(path).getroot()
    except ET.ParseError as err:
        raise SlideError(f"{path}: not an XML file ({err}); expected an ASAP lesion annotation") from err
    if root.tag != "ASAP_Annotations":
        raise SlideError(f"{path}: root element is <{root.tag}>, expected <ASAP_Annotations> (Camelyon16 lesion XML)")
    lesions = Lesions({}, [])
    for k, annotation in enumerate(root.iter("Annotation")):
        group = (annotation.get("PartOfGroup") or "").strip()
        points = sorted(
            (
                (int(c.get("Order", i)), float(c.get("X")), float(c.get("Y")))
                for i, c in enumerate(annotation.iter("Coordinate"))
            ),
        )
        if len(points) < 3:
            raise SlideError(
                f"{path}: annotation {k} ({annotation.get('Name')!r}) has {len(points)} vertices; a polygon needs 3"
            )
        polygon = np.array([(x, y) for _, x, y in points])
        if group.lower() in groups:
            lesions.regions.setdefault(groups[group.lower()], []).append(polygon)
        elif group.lower() in EXCLUSION_GROUPS:
            lesions.exclusion.append(polygon)
        else:
            raise SlideError(
                f"{path}: annotation {k} has PartOfGroup={group!r}; known lesion groups {sorted(groups)}, "
                f"exclusion groups {sorted(EXCLUSION_GROUPS)}; name its category in smmile.camelyon16.classes"
            )
    return lesions


def open_slide(path: str | Path):
    import tiffslide

    try:
        return tiffslide.TiffSlide(str(path))
    except Exception as err:  # tiffslide raises several types for unreadable files
        raise SlideError(f"{path}: cannot be read as a whole-slide image ({type(err).__name__}: {err})") from err


def tissue_mask(thumbnail: np.ndarray) -> np.ndarray:
    """Tissue where the HSV saturation of an RGB thumbnail exceeds its Otsu threshold (and a floor of 15 /
    255, so that a blank slide has no tissue)."""
    from skimage.color import rgb2hsv
    from skimage.filters import threshold_otsu

    saturation = rgb2hsv(thumbnail[..., :3])[..., 1]
    if np.ptp(saturation) == 0:
        return np.zeros(saturation.shape, dtype=bool)
    return saturation > max(threshold_otsu(saturation), 15 / 255)


def tile_coordinates(slide, patch_size: int = 224, level: int = 0, min_tissue: float = 0.5) -> np.ndarray:
    """(patches, 2) integer grid positions (row, column) of the patches of ``patch_size`` pixels at
    ``level`` whose tissue share reaches ``min_tissue``; level-0 pixel origin = grid x patch size x
    the level's downsample."""
    if level >= slide.level_count:
        raise SlideError(f"the slide has {slide.level_count} levels; level {level} does not exist")
    width, height = slide.level_dimensions[level]
    n_cols, n_rows = width // patch_size, height // patch_size
    if n_cols == 0 or n_rows == 0:
        raise SlideError(f"a {width} x {height} level is smaller than one {patch_size}-pixel patch")
    # a thumbnail of ~4 pixels per patch side decides the tissue share of every patch
    mask_level = slide.get_best_level_for_downsample(slide.level_downsamples[level] * patch_size / 4)
    mask_w, mask_h = slide.level_dimensions[mask_level]
    thumbnail = np.asarray(slide.read_region((0, 0), mask_level, (mask_w, mask_h)).convert("RGB"))
    mask = tissue_mask(thumbnail)
    scale = slide.level_downsamples[level] / slide.level_downsamples[mask_level]  # level pixels -> mask pixels
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    step = patch_size * scale
    integral = np.pad(mask.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    r0 = np.clip((rows * step).astype(int), 0, mask_h)
    r1 = np.clip(((rows + 1) * step).astype(int), 0, mask_h)
    c0 = np.clip((cols * step).astype(int), 0, mask_w)
    c1 = np.clip(((cols + 1) * step).astype(int), 0, mask_w)
    area = np.maximum((r1 - r0) * (c1 - c0), 1)
    share = (integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]) / area
    keep = share >= min_tissue
    return np.stack([rows[keep], cols[keep]], 1).astype(np.int64)


def patch_labels(
    coords: np.ndarray,
    lesions: Lesions,
    patch_size_level0: float,
    min_tumour: float = 0.5,
    resolution: int = 8,
) -> np.ndarray:
    """Per patch: the lesion category covering most of it (1 for Camelyon16's tumour; at least
    ``min_tumour``), 0 normal, -1 excluded. Polygons are rasterised at ``resolution`` pixels per patch side
    (skimage.draw.polygon), exclusion removed from every category."""
    from skimage.draw import polygon as fill_polygon

    coords = np.asarray(coords)
    labels = np.zeros(len(coords), dtype=np.int8)
    if not lesions.tumour and not lesions.exclusion:
        return labels
    scale = resolution / patch_size_level0  # level-0 pixels -> raster pixels
    n_rows, n_cols = (coords.max(0) + 1) * resolution

    def raster(polygons):
        out = np.zeros((n_rows, n_cols), dtype=bool)
        for poly in polygons:
            rr, cc = fill_polygon(poly[:, 1] * scale, poly[:, 0] * scale, shape=out.shape)
            out[rr, cc] = True  # holes come as exclusion polygons
        return out

    def share_per_patch(raster_mask: np.ndarray) -> np.ndarray:
        return raster_mask.reshape(n_rows // resolution, resolution, n_cols // resolution, resolution).mean((1, 3))

    exclusion = raster(lesions.exclusion)
    rows, cols = coords[:, 0], coords[:, 1]
    best = np.zeros(len(coords))
    for category in sorted(lesions.regions):
        share = share_per_patch(raster(lesions.regions[category]) & ~exclusion)[rows, cols]
        wins = (share >= min_tumour) & (share > best)
        labels[wins], best[wins] = category, share[wins]
    labels[(share_per_patch(exclusion)[rows, cols] >= 0.5) & (labels == 0)] = -1
    return labels


def read_patches(slide, coords: np.ndarray, patch_size: int = 224, level: int = 0):
    """Yield (patch index, RGB uint8 array) for each grid position, read at ``level``."""
    downsample = slide.level_downsamples[level]
    for i, (row, col) in enumerate(np.asarray(coords)):
        origin = (int(col * patch_size * downsample), int(row * patch_size * downsample))
        region = slide.read_region(origin, level, (patch_size, patch_size)).convert("RGB")
        yield i, np.asarray(region)
