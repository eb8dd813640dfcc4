"""Camelyon16 raw slides: tiling a pyramidal TIFF, ASAP lesion XML, patch labels (files the test writes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixmil_workflow.camelyon16.slides.demo import SlideDemoParams, write_demo_slides, write_pyramid
from mixmil_workflow.camelyon16.slides.features import (
    assemble_spatial,
    build_patch_encoder,
    lesions_from_zip,
    read_reference,
    slide_patch_features,
    slide_table,
)
from mixmil_workflow.camelyon16.slides.tiling import (
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
    write_pyramid(path, image, n_levels=3)


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


TINY = SlideDemoParams(n_normal=2, n_tumour=2, n_test=2, patch_size=32, grid=(8, 10), lesion_radius=(1.5, 2.5))


@pytest.fixture(scope="module")
def demo_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("camelyon16")
    write_demo_slides(root, TINY, seed=3)
    return root


def test_demo_release_has_the_official_layout_and_is_seeded(demo_release, tmp_path):
    import zipfile

    table = slide_table(demo_release)
    assert list(table["slide"]) == ["normal_001", "normal_002", "tumor_001", "tumor_002", "test_001", "test_002"]
    assert list(table["split"]) == ["train"] * 4 + ["test"] * 2
    assert list(table["label"][:4]) == [0, 0, 1, 1] and sorted(table["label"][4:]) == [0, 1]
    lines = (demo_release / "testing/reference.csv").read_text().splitlines()
    assert len(lines) == 2 and all(line.split(",")[1] in ("Tumor", "Normal") for line in lines)  # no header
    with zipfile.ZipFile(demo_release / "training/lesion_annotations.zip") as z:
        assert sorted(z.namelist()) == ["tumor_001.xml", "tumor_002.xml"]
    tumour_test = table.loc[(table["split"] == "test") & (table["label"] == 1), "slide"].item()
    assert len(lesions_from_zip(demo_release / "testing/lesion_annotations.zip", tumour_test).tumour) >= 1
    assert lesions_from_zip(demo_release / "training/lesion_annotations.zip", "normal_001").tumour == []
    slide = open_slide(demo_release / "training/tumor/tumor_001.tif")
    assert slide.level_count == 3 and slide.level_downsamples[1] == pytest.approx(2.0)
    again = tmp_path / "again"
    write_demo_slides(again, TINY, seed=3)
    for name in ("training/tumor/tumor_001.tif", "training/lesion_annotations.zip", "testing/reference.csv"):
        assert (again / name).read_bytes() == (demo_release / name).read_bytes(), name


def test_slide_features_follow_the_lesions_and_assemble_into_a_spatial_dataset(demo_release):
    table = slide_table(demo_release)
    encoder = build_patch_encoder(None, seed=0)
    files = {}
    for row in table.itertuples():
        zip_path = demo_release / ("testing" if row.split == "test" else "training") / "lesion_annotations.zip"
        lesions = lesions_from_zip(zip_path, row.slide)
        patches = slide_patch_features(row.path, lesions, encoder, patch_size=32, batch_size=16)
        slide = open_slide(row.path)
        coords = tile_coordinates(slide, 32)
        np.testing.assert_array_equal(patches["coords"], coords)
        np.testing.assert_array_equal(patches["label"], patch_labels(coords, lesions, 32))
        assert patches["features"].shape == (len(coords), 2048) and np.isfinite(patches["features"]).all()
        assert (patches["label"] == 1).any() == bool(row.label)  # tumour patches exactly on tumour slides
        files[row.slide] = demo_release / f"{row.slide}.npz"
        np.savez(files[row.slide], **patches)
    lesions = lesions_from_zip(demo_release / "training/lesion_annotations.zip", "tumor_001")
    again = slide_patch_features(
        table["path"][2], lesions, build_patch_encoder(None, seed=0), patch_size=32, batch_size=5
    )
    with np.load(files["tumor_001"]) as f:
        np.testing.assert_allclose(again["features"], f["features"], rtol=1e-4, atol=1e-5)  # seeded, batch-free
    data, kept = assemble_spatial(table, files, n_components=6, seed=0)
    assert data.x.shape[1] == 6 and list(kept["slide"]) == list(table["slide"])
    train = np.repeat(data.split == "train", np.diff(data.offsets))
    np.testing.assert_allclose(data.x[train].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(data.x[train].std(0), 1, atol=1e-3)
    assert list(data.slide_label) == list(table["label"]) and data.offsets[-1] == len(data.x)


def test_release_errors_name_the_file_and_the_fix(tmp_path, demo_release):
    with pytest.raises(SlideError, match="no slides under training/normal"):
        slide_table(tmp_path)
    bad = tmp_path / "reference.csv"
    bad.write_text("test_001,Tumor\ntest_002,Metastasis\n")
    with pytest.raises(SlideError, match=r"reference.csv, line 2, column 2: 'Metastasis' is not Tumor or Normal"):
        read_reference(bad)
    not_zip = tmp_path / "lesion_annotations.zip"
    not_zip.write_text("x")
    with pytest.raises(SlideError, match="lesion_annotations.zip: not a zip archive"):
        lesions_from_zip(not_zip, "tumor_001")
    with pytest.raises(SlideError, match="do not exist; set smmile.camelyon16.checkpoint"):
        build_patch_encoder(tmp_path / "resnet50.safetensors", seed=0)
    release = tmp_path / "release"
    write_demo_slides(release, TINY, seed=1)
    (release / "testing/reference.csv").write_text("test_001,Tumor\n")
    with pytest.raises(SlideError, match=r"no label for test slide\(s\) \['test_002'\]"):
        slide_table(release)


def test_localisation_ignores_excluded_patches():
    import pandas as pd

    from mixmil_workflow.studies.smmile import localisation_metrics

    slides = pd.DataFrame({"slide": [0, 1], "label": [1, 0], "prob": [0.9, 0.2]})
    patches = pd.DataFrame(
        {
            "slide": [0, 0, 0, 0, 1, 1],
            "label": [1, 0, -1, 0, 0, 0],
            "mimic": 0,
            "score": [0.9, 0.1, 1.0, 0.0, 0.5, 0.4],
        }
    )
    metrics = localisation_metrics(slides, patches)
    assert metrics["patch_auc"] == 1.0 and metrics["precision"] == 1.0 and metrics["recall"] == 1.0


def test_a_bad_xml_inside_the_zip_is_named_by_archive_and_member(tmp_path):
    import zipfile

    archive = tmp_path / "lesion_annotations.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("lesion_annotations/tumor_007.xml", "<Annotations />")
    with pytest.raises(SlideError, match=r"lesion_annotations.zip:lesion_annotations/tumor_007.xml: root element"):
        lesions_from_zip(archive, "tumor_007")


def test_release_slide_paths_agree_between_the_demo_settings_and_the_written_release(demo_release):
    from mixmil_workflow.camelyon16.slides.features import release_slide_paths

    planned = release_slide_paths(str(demo_release), TINY.as_dict())
    assert release_slide_paths(demo_release) == planned
    assert planned["test_001"] == (f"{demo_release}/testing/images/test_001.tif", "testing")


def test_multi_class_annotations_give_each_patch_and_slide_its_category(tmp_path):
    """A subtyping dataset in the same layout: one class per annotation group (LUAD -> 1, LUSC -> 2)."""
    import zipfile

    from mixmil_workflow.camelyon16.slides.features import assemble_spatial, read_reference, slide_table

    classes = {"LUAD": 1, "LUSC": 2}
    xml = tmp_path / "tumor_001.xml"
    _xml(xml, {"LUAD": [_square(0, 0, 2, 2)], "LUSC": [_square(0, 2, 2, 5)], "_2": [_square(4, 4, 5, 5)]})
    lesions = read_lesion_xml(xml, classes=classes)
    assert set(lesions.regions) == {1, 2} and lesions.areas()[2] > lesions.areas()[1]
    coords = np.array([(r, c) for r in range(6) for c in range(6)])
    labels = dict(zip(map(tuple, coords), patch_labels(coords, lesions, PATCH).tolist(), strict=True))
    assert labels[(0, 0)] == labels[(1, 1)] == 1 and labels[(0, 3)] == labels[(1, 4)] == 2
    assert labels[(4, 4)] == -1 and labels[(3, 0)] == 0
    with pytest.raises(SlideError, match="PartOfGroup='LUAD'.*smmile.camelyon16.classes"):
        read_lesion_xml(xml)  # Camelyon16's groups only
    # the release layout: training tumour slides take their largest annotated class, test slides the named one
    root = tmp_path / "release"
    for sub, names in {"training/normal": ["normal_001"], "training/tumor": ["tumor_001", "tumor_002"],
                       "testing/images": ["test_001", "test_002", "test_003"]}.items():  # fmt: skip
        (root / sub).mkdir(parents=True)
        for name in names:
            (root / sub / f"{name}.tif").write_bytes(b"")
    other = tmp_path / "tumor_002.xml"
    _xml(other, {"LUAD": [_square(0, 0, 4, 4)], "LUSC": [_square(5, 5, 6, 6)]})
    with zipfile.ZipFile(root / "training/lesion_annotations.zip", "w") as z:
        z.write(xml, "tumor_001.xml")
        z.write(other, "tumor_002.xml")
    (root / "testing/reference.csv").write_text("test_001,LUSC\ntest_002,Normal\ntest_003,luad\n")
    table = slide_table(root, classes).set_index("slide")["label"].to_dict()
    assert table == {"normal_001": 0, "tumor_001": 2, "tumor_002": 1, "test_001": 2, "test_002": 0, "test_003": 1}
    (root / "testing/reference.csv").write_text("test_001,SCLC\n")
    with pytest.raises(SlideError, match="'SCLC' is not luad or lusc or normal"):
        read_reference(root / "testing/reference.csv", classes)
    # the assembled dataset is a multiclass one, so SMMILe and the baselines fit it as categories
    files = {}
    rng = np.random.default_rng(0)
    slides = pd.DataFrame({"slide": ["a", "b", "c", "d"], "split": ["train", "train", "test", "test"],
                           "label": [1, 2, 0, 2]})  # fmt: skip
    for name in slides["slide"]:
        files[name] = tmp_path / f"{name}.npz"
        np.savez(files[name], coords=coords, label=np.zeros(len(coords), np.int8), features=rng.normal(size=(36, 6)))
    data, _ = assemble_spatial(slides, files, 4, 0)
    assert data.task == "multiclass" and data.categories == [1, 2]


def test_a_subtyping_demo_release_names_each_tumour_type_and_reads_back_as_categories(tmp_path):
    """The demo with several annotation groups: one type per tumour slide, balanced within each folder, the
    group in the XML and reference.csv; read back with the demo's groups numbered 1.. (or the config's)."""
    from mixmil_workflow.camelyon16.slides.demo import demo_lesion_classes

    params = SlideDemoParams(n_normal=1, n_tumour=4, n_test=4, patch_size=32, grid=(6, 7),
                             lesion_classes=("LUAD", "LUSC"))  # fmt: skip
    write_demo_slides(tmp_path, params, seed=2)
    classes = demo_lesion_classes(params, None)
    assert classes == {"LUAD": 1, "LUSC": 2}
    table = slide_table(tmp_path, classes).set_index("slide")["label"]
    assert sorted(table[[f"tumor_00{k}" for k in range(1, 5)]]) == [1, 1, 2, 2]
    assert sorted(table[[f"test_00{k}" for k in range(1, 5)]]) == [0, 0, 1, 2]
    reference = dict(line.split(",") for line in (tmp_path / "testing/reference.csv").read_text().split())
    assert {name: classes.get(kind, 0) for name, kind in reference.items()} == table[list(reference)].to_dict()
    with pytest.raises(SlideError, match="'LU(AD|SC)' is not Tumor or Normal"):
        slide_table(tmp_path)  # read as Camelyon16: the groups are not its tumour groups
    # the config's own numbering is kept; one lacking a demo group, or a bad group list, is refused
    assert demo_lesion_classes(params, {"lusc": 1, "luad": 2}) == {"lusc": 1, "luad": 2}
    with pytest.raises(ValueError, match=r"classes \{'LUAD': 1\} lacks the demo's annotation group\(s\) \['LUSC'\]"):
        demo_lesion_classes(params, {"LUAD": 1})
    for bad in [("LUAD", "luad"), ("Normal", "LUAD"), ("A", "B", "C", "D", "E"), ()]:
        with pytest.raises(ValueError, match="lesion_classes"):
            SlideDemoParams(lesion_classes=bad)
    # Camelyon16's single group reads with the default groups; a single group of another name is numbered
    assert demo_lesion_classes(SlideDemoParams(), None) is None
    assert demo_lesion_classes(SlideDemoParams(lesion_classes=("Metastasis",)), None) == {"Metastasis": 1}
