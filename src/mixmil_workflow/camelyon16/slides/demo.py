"""Generated raw data in the layout and formats of the official Camelyon16 release, for the offline demo and
the tests: tiled pyramidal TIFF slides, ASAP lesion XML in ``lesion_annotations.zip`` and the test
``reference.csv`` (no header; slide name, ``Tumor``/``Normal``), so the same rules run on both::

    training/normal/normal_001.tif ...   training/tumor/tumor_001.tif ...   training/lesion_annotations.zip
    testing/images/test_001.tif ...      testing/reference.csv              testing/lesion_annotations.zip

A slide is white glass with one rough tissue blob: eosin-pink stroma with small, sparse haematoxylin
nuclei; metastases (tumour slides) are 1-``max_lesions`` elliptical regions of larger, darker, crowded
nuclei, annotated as polygons in level-0 pixels (group ``Tumor`` in the training XML, ``_0`` in the test
XML: both namings occur in the wild). Sizes are in patches of ``patch_size`` level-0 pixels.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mixmil_workflow.camelyon16.slides.tiling import LAYOUT

GLASS = (238, 236, 240)
STROMA = (228, 160, 200)
NUCLEUS = (110, 60, 160)
TUMOUR_NUCLEUS = (70, 35, 125)


@dataclass(frozen=True)
class SlideDemoParams:
    n_normal: int = 20  # training/normal
    n_tumour: int = 20  # training/tumor
    n_test: int = 20  # testing/images, half of them tumour (chosen by the seed)
    patch_size: int = 64  # level-0 pixels per patch side
    grid: tuple[int, int] = (12, 18)  # slide side in patches, uniform in this range
    max_lesions: int = 2
    lesion_radius: tuple[float, float] = (1.0, 3.0)  # patches

    def as_dict(self) -> dict:
        return asdict(self)


def slide_names(params: SlideDemoParams) -> dict[str, list[str]]:
    """Slide names per official folder: ``normal``, ``tumor`` (training) and ``test``."""
    return {
        "normal": [f"normal_{k:03d}" for k in range(1, params.n_normal + 1)],
        "tumor": [f"tumor_{k:03d}" for k in range(1, params.n_tumour + 1)],
        "test": [f"test_{k:03d}" for k in range(1, params.n_test + 1)],
    }


def write_pyramid(path: str | Path, image: np.ndarray, n_levels: int = 3) -> None:
    """A tiled pyramidal RGB TIFF (full resolution, then halves) as slide scanners and ASAP write them."""
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        level = image
        for k in range(n_levels):
            tif.write(level, tile=(256, 256), photometric="rgb", subfiletype=1 if k else 0, compression="zlib")
            level = level[::2, ::2]


def lesion_xml(polygons: list[np.ndarray], group: str = "Tumor") -> str:
    """ASAP annotation XML of tumour polygons ((vertices, 2) level-0 x, y)."""
    annotations = []
    for k, poly in enumerate(polygons):
        coords = "".join(f'<Coordinate Order="{i}" X="{x:.1f}" Y="{y:.1f}" />' for i, (x, y) in enumerate(poly))
        annotations.append(
            f'<Annotation Name="Annotation {k}" Type="Polygon" PartOfGroup="{group}" Color="#F4FA58">'
            f"<Coordinates>{coords}</Coordinates></Annotation>"
        )
    groups = f'<Group Name="{group}" PartOfGroup="None" Color="#ff0000"><Attributes /></Group>'
    return (
        '<?xml version="1.0"?>\n<ASAP_Annotations><Annotations>'
        + "".join(annotations)
        + f"</Annotations><AnnotationGroups>{groups}</AnnotationGroups></ASAP_Annotations>\n"
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    from skimage.transform import resize

    coarse = rng.standard_normal((max(2, shape[0] // scale), max(2, shape[1] // scale)))
    return resize(coarse, shape, order=3, mode="reflect")


def _draw_nuclei(image, rng, region: np.ndarray, density: float, radius: tuple[float, float], colour) -> None:
    from skimage.draw import disk

    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        return
    n = rng.poisson(density * len(ys))
    pick = rng.integers(0, len(ys), n)
    shade = np.asarray(colour, float)
    for y, x, r, d in zip(ys[pick], xs[pick], rng.uniform(*radius, n), rng.normal(0, 12, n), strict=True):
        rr, cc = disk((y, x), r, shape=region.shape)
        image[rr, cc] = np.clip(shade + d, 0, 255)


def render_slide(rng: np.random.Generator, params: SlideDemoParams, tumour: bool) -> tuple[np.ndarray, list]:
    """One slide image (uint8 RGB) and its tumour polygons in level-0 pixels (empty for a normal slide)."""
    from skimage.draw import polygon as fill_polygon

    p = params.patch_size
    rows, cols = (int(v) for v in rng.integers(params.grid[0], params.grid[1] + 1, 2))
    h, w = rows * p, cols * p
    yy, xx = np.mgrid[0:h, 0:w]
    # tissue: an ellipse over most of the glass with a rough edge
    radial = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.42 * w)) ** 2
    tissue = radial + 0.25 * _smooth_noise(rng, (h, w), 2 * p) < 1.0
    image = np.empty((h, w, 3), np.float64)
    image[:] = GLASS
    image += rng.normal(0, 2, (h, w, 1))
    texture = 10 * _smooth_noise(rng, (h, w), p // 4)
    image[tissue] = np.clip(np.asarray(STROMA) + texture[tissue, None], 0, 255)
    polygons = []
    lesion = np.zeros((h, w), bool)
    if tumour:
        inside = np.argwhere(tissue)
        for _ in range(int(rng.integers(1, params.max_lesions + 1))):
            cy, cx = inside[rng.integers(len(inside))]
            ry, rx = rng.uniform(*params.lesion_radius, 2) * p
            angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            wobble = 1 + 0.15 * rng.standard_normal(24)
            poly = np.stack([cx + rx * wobble * np.cos(angle), cy + ry * wobble * np.sin(angle)], 1)
            poly = np.clip(poly, 0, [w - 1, h - 1])
            rr, cc = fill_polygon(poly[:, 1], poly[:, 0], shape=(h, w))
            lesion[rr, cc] = True
            polygons.append(poly)
        lesion &= tissue
    image = image.astype(np.uint8)
    _draw_nuclei(image, rng, tissue & ~lesion, 0.0025, (1.5, 2.5), NUCLEUS)
    _draw_nuclei(image, rng, lesion, 0.012, (2.5, 4.0), TUMOUR_NUCLEUS)
    return image, polygons


def _zip(path: Path, members: dict[str, str]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2016, 1, 1, 0, 0, 0)), members[name])
    path.write_bytes(buffer.getvalue())


def write_demo_slides(root: str | Path, params: SlideDemoParams, seed: int) -> list[Path]:
    """Write the demo release under ``root``; returns the files written."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    names = slide_names(params)
    test_tumour = set(rng.permutation(names["test"])[: (len(names["test"]) + 1) // 2])
    written: list[Path] = []
    training_xml, testing_xml, reference = {}, {}, []
    for folder, name in [(f, n) for f in ("normal", "tumor", "test") for n in names[f]]:
        tumour = folder == "tumor" or name in test_tumour
        image, polygons = render_slide(rng, params, tumour)
        directory = root / LAYOUT[folder]
        directory.mkdir(parents=True, exist_ok=True)
        write_pyramid(directory / f"{name}.tif", image)
        written.append(directory / f"{name}.tif")
        if folder == "test":
            reference.append(f"{name},{'Tumor' if tumour else 'Normal'}")
            if tumour:
                testing_xml[f"{name}.xml"] = lesion_xml(polygons, "_0")
        elif tumour:
            training_xml[f"{name}.xml"] = lesion_xml(polygons, "Tumor")
    (root / "training").mkdir(parents=True, exist_ok=True)
    (root / "testing").mkdir(parents=True, exist_ok=True)
    _zip(root / "training/lesion_annotations.zip", training_xml)
    _zip(root / "testing/lesion_annotations.zip", testing_xml)
    (root / "testing/reference.csv").write_text("\n".join(reference) + "\n")
    return [*written, root / "training/lesion_annotations.zip", root / "testing/lesion_annotations.zip",
            root / "testing/reference.csv"]  # fmt: skip
