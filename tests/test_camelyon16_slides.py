"""Camelyon16 raw slides: tiling a pyramidal TIFF, ASAP lesion XML, patch labels (files the test writes)."""

from __future__ import annotations

import numpy as np
import pytest

from mixmil_workflow.camelyon16.slides import (
    SlideError,
    open_slide,
    patch_labels,
    read_lesion_xml,
    read_patches,
    tile_coordinates,
)

PATCH = 128


def _pyramid(path, image: np.ndarray) -> None:
    """A tiled pyramidal TIFF (full, 1/2, 1/4) as whole-slide scanners and ASAP write them."""
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        for k, level in enumerate((image, image[::2, ::2], image[::4, ::4])):
            tif.write(level, tile=(256, 256), photometric="rgb", subfiletype=1 if k else 0)


def _xml(path, polygons: dict[str, list[list[tuple[float, float]]]]) -> None:
    annotations = []
    for group, polys in polygons.items():
        for k, poly in enumerate(polys):
            coords = "".join(f'<Coordinate Order="{i}" X="{x}" Y="{y}" />' for i, (x, y) in enumerate(poly))
            annotations.append(
                f'<Annotation Name="{group} {k}" Type="Polygon" PartOfGroup="{group}" Color="#F4FA58">'
                f"<Coordinates>{coords}</Coordinates></Annotation>"
            )
    path.write_text(
        '<?xml version="1.0"?><ASAP_Annotations><Annotations>'
        + "".join(annotations)
        + "</Annotations><AnnotationGroups /></ASAP_Annotations>"
    )


@pytest.fixture()
def slide_path(tmp_path):
    image = np.full((1536, 2048, 3), 240, np.uint8)  # white glass
    image[256:1280, 384:1664] = (200, 110, 180)  # pink tissue: rows 2-9, columns 3-12 of 128-px patches
    path = tmp_path / "tumor_001.tif"
    _pyramid(path, image)
    return path


def test_tiling_keeps_the_tissue_patches_and_reads_them(slide_path):
    slide = open_slide(slide_path)
    coords = tile_coordinates(slide, patch_size=PATCH, level=0, min_tissue=0.5)
    assert {tuple(c) for c in coords} == {(r, c) for r in range(2, 10) for c in range(3, 13)}
    half = tile_coordinates(slide, patch_size=PATCH, level=1, min_tissue=0.5)  # 256 level-0 pixels per patch
    # tissue spans level-0 columns 384-1664 = 1.5-6.5 patches of 256: the half-covered edge patches count
    assert {tuple(c) for c in half} == {(r, c) for r in range(1, 5) for c in range(1, 7)}
    patches = dict(read_patches(slide, coords[:2], patch_size=PATCH))
    assert patches[0].shape == (PATCH, PATCH, 3) and (patches[0] == (200, 110, 180)).all()
    with pytest.raises(SlideError, match="level 5 does not exist"):
        tile_coordinates(slide, level=5)


def test_blank_slides_have_no_tissue_and_unreadable_files_say_so(tmp_path):
    path = tmp_path / "normal_002.tif"
    _pyramid(path, np.full((512, 512, 3), 235, np.uint8))
    assert len(tile_coordinates(open_slide(path), patch_size=PATCH)) == 0
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(SlideError, match="broken.tif: cannot be read as a whole-slide image"):
        open_slide(bad)


def _square(r0, c0, r1, c1):
    """A rectangle over patch rows r0..r1 and columns c0..c1, in level-0 pixels (x, y)."""
    return [(c0 * PATCH, r0 * PATCH), (c1 * PATCH, r0 * PATCH), (c1 * PATCH, r1 * PATCH), (c0 * PATCH, r1 * PATCH)]


def test_lesion_polygons_become_patch_labels_with_exclusions(tmp_path):
    xml = tmp_path / "tumor_001.xml"
    # tumour over patches rows 2-3, cols 3-5 (group "_0"), a second one in "Tumor" naming, an exclusion (_2)
    _xml(
        xml,
        {
            "_0": [_square(2, 3, 4, 6)],
            "Tumor": [_square(8, 10, 8.5, 11)],
            "_2": [_square(2, 5, 4, 6), _square(6, 6, 7, 7)],
        },
    )
    lesions = read_lesion_xml(xml)
    assert len(lesions.tumour) == 2 and len(lesions.exclusion) == 2
    coords = np.array([(r, c) for r in range(2, 10) for c in range(3, 13)])
    labels = patch_labels(coords, lesions, patch_size_level0=PATCH, min_tumour=0.5)
    got = {tuple(c): int(v) for c, v in zip(coords, labels, strict=True)}
    assert {k for k, v in got.items() if v == 1} == {(2, 3), (2, 4), (3, 3), (3, 4), (8, 10)}  # half a patch counts
    assert {k for k, v in got.items() if v == -1} == {(2, 5), (3, 5), (6, 6)}
    strict = patch_labels(coords, lesions, patch_size_level0=PATCH, min_tumour=0.75)
    assert strict[np.flatnonzero((coords == (8, 10)).all(1))[0]] == 0


def test_bad_annotation_files_name_the_problem(tmp_path):
    wrong_root = tmp_path / "a.xml"
    wrong_root.write_text("<Annotations />")
    with pytest.raises(SlideError, match="expected <ASAP_Annotations>"):
        read_lesion_xml(wrong_root)
    unknown = tmp_path / "b.xml"
    _xml(unknown, {"Stroma": [[(0, 0), (1, 0), (1, 1)]]})
    with pytest.raises(SlideError, match="PartOfGroup='Stroma'"):
        read_lesion_xml(unknown)
    not_xml = tmp_path / "c.xml"
    not_xml.write_text("{}")
    with pytest.raises(SlideError, match="not an XML file"):
        read_lesion_xml(not_xml)
    line = tmp_path / "d.xml"
    _xml(line, {"_1": [[(0, 0), (5, 5)]]})
    with pytest.raises(SlideError, match="needs 3"):
        read_lesion_xml(line)
