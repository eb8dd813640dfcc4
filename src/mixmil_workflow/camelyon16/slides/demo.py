"""Generated raw data in the layout and formats of the official Camelyon16 release, for the offline demo and
the tests: tiled pyramidal TIFF slides, ASAP lesion XML in ``lesion_annotations.zip`` and the test
``reference.csv`` (no header; slide name, ``Tumor``/``Normal``), so the same rules run on both::

    training/normal/normal_001.tif ...   training/tumor/tumor_001.tif ...   training/lesion_annotations.zip
    testing/images/test_001.tif ...      testing/reference.csv              testing/lesion_annotations.zip

A slide is white glass with one rough tissue blob: eosin-pink stroma with small, sparse haematoxylin
nuclei; metastases (tumour slides) are 1-``max_lesions`` elliptical regions of larger, darker, crowded
nuclei, annotated as polygons in level-0 pixels (group ``Tumor`` in the training XML, ``_0`` in the test
XML: both namings occur in the wild). Sizes are in patches of ``patch_size`` level-0 pixels.

A subtyping dataset laid out the same way (TCGA-like: each tumour slide holds one of several tumour types):
``lesion_classes`` names more than one annotation group (e.g. ``("LUAD", "LUSC")``); each tumour slide
draws one type, balanced over the slides of a folder, its lesions carry that group name in both XML
archives, ``reference.csv`` names it for the test slides, and each type has its own nuclei (colour, size,
crowding) so the types are told apart from the pixels. One group (the default ``Tumor``) is Camelyon16.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mixmil_workflow.camelyon16.slides.tiling import LAYOUT, TUMOUR_GROUPS

GLASS = (238, 236, 240)
STROMA = (228, 160, 200)
NUCLEUS = (110, 60, 160)
TUMOUR_NUCLEUS = (70, 35, 125)
# nuclei of the tumour types (colour, radius range in pixels, nuclei per tissue pixel): the first is
# Camelyon16's metastasis; the others large pale-rimmed pleomorphic nuclei, small crowded magenta ones, and
# tiny dense dark ones
LESION_STYLES = (
    (TUMOUR_NUCLEUS, (2.5, 4.0), 0.012),
    ((40, 25, 80), (4.0, 6.0), 0.006),
    ((150, 40, 120), (1.5, 2.5), 0.03),
    ((30, 20, 50), (1.0, 1.8), 0.05),
)


@dataclass(frozen=True)
class SlideDemoParams:
    n_normal: int = 20  # training/normal
    n_tumour: int = 20  # training/tumor
    n_test: int = 20  # testing/images, half of them tumour (chosen by the seed)
    patch_size: int = 64  # level-0 pixels per patch side
    grid: tuple[int, int] = (12, 18)  # slide side in patches, uniform in this range
    max_lesions: int = 2
    lesion_radius: tuple[float, float] = (1.0, 3.0)  # patches
    lesion_classes: tuple[str, ...] = ("Tumor",)  # annotation groups; several: a subtyping dataset

    def __post_init__(self):
        names = [str(n).strip().lower() for n in self.lesion_classes]
        if not 1 <= len(names) <= len(LESION_STYLES) or len(set(names)) < len(names) or "normal" in names:
            raise ValueError(
                f"smmile.camelyon16.demo.lesion_classes {list(self.lesion_classes)}: give 1 to "
                f"{len(LESION_STYLES)} distinct annotation group names other than Normal"
            )

    @property
    def subtyping(self) -> bool:
        return len(self.lesion_classes) > 1

    def as_dict(self) -> dict:
        return asdict(self)


def demo_lesion_classes(params: SlideDemoParams, classes: Mapping[str, int] | None) -> dict[str, int] | None:
    """The annotation group -> category map the demo release is read with: ``classes`` when given (it
    must name every demo group); else the demo's groups numbered 1.. in order, or None for Camelyon16's
    ``Tumor`` group (read with the default groups)."""
    if not classes:
        if not params.subtyping and params.lesion_classes[0].strip().lower() in TUMOUR_GROUPS:
            return None
        return {name: k + 1 for k, name in enumerate(params.lesion_classes)}
    known = {str(name).strip().lower() for name in classes}
    missing = [name for name in params.lesion_classes if name.strip().lower() not in known]
    if missing:
        raise ValueError(
            f"config: smmile.camelyon16.classes {dict(classes)} lacks the demo's annotation group(s) {missing} "
            "(smmile.camelyon16.demo.lesion_classes); add them, or leave classes unset to number the demo's groups"
        )
    return dict(classes)


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


def render_slide(
    rng: np.random.Generator, params: SlideDemoParams, tumour: bool, category: int = 1
) -> tuple[np.ndarray, list]:
    """One slide image (uint8 RGB) and its tumour polygons in level-0 pixels (empty for a normal slide);
    ``category``: the tumour type (1.. in ``params.lesion_classes``), which sets the lesion's nuclei."""
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
    colour, radius, density = LESION_STYLES[category - 1]
    _draw_nuclei(image, rng, lesion, density, radius, colour)
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
    test_tumour = rng.permutation(names["test"])[: (len(names["test"]) + 1) // 2]
    # a subtyping release: each tumour slide's type, balanced within its folder (no draw for Camelyon16,
    # so its release stays as it was)
    category = dict.fromkeys([*names["tumor"], *test_tumour], 1)
    if params.subtyping:
        n_classes = len(params.lesion_classes)
        for group in (names["tumor"], sorted(test_tumour)):
            category.update(zip(group, rng.permutation(np.arange(len(group)) % n_classes) + 1, strict=True))
    written: list[Path] = []
    training_xml, testing_xml, reference = {}, {}, []
    for folder, name in [(f, n) for f in ("normal", "tumor", "test") for n in names[f]]:
        tumour = name in category
        image, polygons = render_slide(rng, params, tumour, int(category.get(name, 1)))
        directory = root / LAYOUT[folder]
        directory.mkdir(parents=True, exist_ok=True)
        write_pyramid(directory / f"{name}.tif", image)
        written.append(directory / f"{name}.tif")
        group = params.lesion_classes[category[name] - 1] if tumour else None
        if folder == "test":
            kind = (group if params.subtyping else "Tumor") if tumour else "Normal"
            reference.append(f"{name},{kind}")
            if tumour:
                testing_xml[f"{name}.xml"] = lesion_xml(polygons, group if params.subtyping else "_0")
        elif tumour:
            training_xml[f"{name}.xml"] = lesion_xml(polygons, group)
    (root / "training").mkdir(parents=True, exist_ok=True)
    (root / "testing").mkdir(parents=True, exist_ok=True)
    _zip(root / "training/lesion_annotations.zip", training_xml)
    _zip(root / "testing/lesion_annotations.zip", testing_xml)
    (root / "testing/reference.csv").write_text("\n".join(reference) + "\n")
    return [*written, root / "training/lesion_annotations.zip", root / "testing/lesion_annotations.zip",
            root / "testing/reference.csv"]  # fmt: skip
