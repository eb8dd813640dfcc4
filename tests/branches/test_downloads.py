"""Each data branch from a download served on 127.0.0.1, in the real sources' formats."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mixmil_workflow.io import read_table
from tests.support.job_envs import assert_jobs_used_only_their_envs
from tests.support.workflow import REPO, snakemake


def _camelyon16_download_config(tmp_path, url: str, sha256: str, size: int) -> Path:
    sheet = tmp_path / "sources.tsv"
    sheet.write_text(
        "source\turl\tsha256\tsize_bytes\tdescription\n"
        f"camelyon16_features\t{url}\t{sha256}\t{size}\tgenerated archive served on 127.0.0.1\n"
    )
    config = yaml.safe_load((REPO / "tests/configs/camelyon16_download.yaml").read_text())
    config["camelyon16"]["sheet"] = str(sheet)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_camelyon16_branch_from_a_download_end_to_end(tmp_path):
    """Download (real HTTP on 127.0.0.1, checksum checked) -> conversion -> models x seeds -> Table 3."""
    import hashlib

    from mixmil_workflow.camelyon16 import DemoSpec, write_demo_archive
    from tests.support.http_server import serve

    www = tmp_path / "www"
    spec = DemoSpec(n_train_normal=10, n_train_tumor=10, n_test_normal=6, n_test_tumor=6, max_patches=40, n_features=24)
    write_demo_archive(www / "features.zip", tmp_path / "truth.tsv.gz", spec, seed=0)
    data = (www / "features.zip").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    workdir = tmp_path / "run"
    with serve(www) as (url, state):
        config = _camelyon16_download_config(tmp_path, f"{url}/features.zip", sha, len(data))
        snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
        assert (workdir / "resources/camelyon16/camelyon16_features.zip").read_bytes() == data
        runs = pd.read_csv(workdir / "results/camelyon16/tables/camelyon16_runs.tsv", sep="\t", comment="#")
        assert len(runs) == 3 * 2 and runs["test_auc"].between(0, 1).all()
        assert assert_jobs_used_only_their_envs(workdir) > 5
        table = pd.read_csv(workdir / "results/camelyon16/tables/table3_auc.tsv", sep="\t", comment="#")
        assert list(table["model"]) == ["mixmil", "glmm", "abmil"] and (table["n_seeds"] == 2).all()
        assert (workdir / "results/camelyon16/figures/roc.svg").stat().st_size > 0
        # The sweep (Table C.7 analogue): each combination scored on the validation slides, lowest loss selected.
        grid = pd.read_csv(workdir / "results/camelyon16/sweep/sweep_grid.tsv", sep="\t", comment="#")
        assert sorted(grid["lr"]) == [0.0001, 0.001] and (grid["validation_loss"] > 0).all()
        selected = yaml.safe_load((workdir / "results/camelyon16/sweep/selected_models.yaml").read_text())["models"]
        assert selected["abmil"]["lr"] == grid.loc[grid["validation_loss"].idxmin(), "lr"]
        # Without the demo's patch truth there is no instance AUC, only the (empty) table.
        assert pd.read_csv(workdir / "results/camelyon16/tables/instance_auc.tsv", sep="\t", comment="#").empty
        again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
        assert "Nothing to be done" in again.stdout + again.stderr
        snakemake("--configfile", str(config), "--directory", str(workdir), "--report", "report.html")
        html = (workdir / "report.html").read_text()
        assert all(name in html for name in ("table3_auc.md", "roc.png", "instance_scores.png"))

        # A checksum that does not match: the download rule fails naming the fix and leaves no archive.
        bad = _camelyon16_download_config(tmp_path, f"{url}/features.zip", "f" * 64, len(data))
        other = tmp_path / "bad"
        result = snakemake("--cores", "1", "--configfile", str(bad), "--directory", str(other), check=False)
    assert result.returncode != 0
    log = (other / "logs/camelyon16/download.log").read_text()
    assert "does not match" in log and "update the sheet" in log
    assert not list((other / "resources/camelyon16").glob("camelyon16_features.zip*"))


def _sheet_config(tmp_path, rows: dict[str, tuple[str, str]], name: str, template: str, section: str) -> Path:
    """A copy of the test config ``template`` whose ``section.sheet`` lists ``rows`` (source -> url, sha256)."""
    sheet = tmp_path / f"{name}.tsv"
    sheet.write_text(
        "source\turl\tsha256\tsize_bytes\tdescription\n"
        + "".join(f"{source}\t{url}\t{sha}\t\tserved on 127.0.0.1\n" for source, (url, sha) in rows.items())
    )
    config = yaml.safe_load((REPO / "tests/configs" / template).read_text())
    config[section]["sheet"] = str(sheet)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _onek1k_download_config(tmp_path, rows: dict[str, tuple[str, str]], name: str) -> Path:
    return _sheet_config(tmp_path, rows, name, "onek1k_download.yaml", "genetics")


def test_genetics_branch_from_a_download_to_the_labels(tmp_path):
    """OneK1K-format files served on 127.0.0.1 -> download rules (sha256 checked) -> cells, scVI,
    genotypes, variant universe, GLMM screen and clumping; a wrong checksum fails and leaves no file."""
    import hashlib

    from mixmil_workflow.genetics.demo import LYMPHOID_ESNP_CODES, OneK1KDemoSpec, write_onek1k_demo
    from tests.support.http_server import serve

    www = tmp_path / "www"
    paths = write_onek1k_demo(www, OneK1KDemoSpec(n_donors=120, mean_cells=60, n_genes=600, effect=1.5), seed=0)
    # The VCF's index, as the real download has one: the dosages are read through it (bcftools -R).
    subprocess.run(["bcftools", "index", "--csi", str(paths["vcf"])], check=True)
    files = {
        "onek1k_h5ad": "onek1k.h5ad",
        "onek1k_vcf": "OneK1K.noGP.vcf.gz",
        "onek1k_vcf_csi": "OneK1K.noGP.vcf.gz.csi",
        **{f"onek1k_esnp_{code}": f"esnp/{code}_esnp_table.tsv.gz" for code in LYMPHOID_ESNP_CODES},
    }
    downloaded = {source: name.removeprefix("esnp/") for source, name in files.items()}
    sha = {source: hashlib.sha256((www / name).read_bytes()).hexdigest() for source, name in files.items()}
    workdir = tmp_path / "run"
    with serve(www) as (url, state):
        rows = {source: (f"{url}/{name}", sha[source]) for source, name in files.items()}
        config = _onek1k_download_config(tmp_path, rows, "good")
        snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
        for source, name in files.items():
            got = workdir / "resources/onek1k/download" / downloaded[source]
            assert got.read_bytes() == (www / name).read_bytes(), name
        assert not (workdir / "resources/onek1k/demo").exists()
        labels = read_table(workdir / "results/genetics/labels/labels.tsv")
        truth = pd.read_csv(paths["truth"], sep="\t").set_index("rsid")
        assert len(labels) >= 2 and truth.loc[labels["rsid"], "role"].isin(["planted", "proxy"]).sum() >= 2
        assert assert_jobs_used_only_their_envs(workdir) >= 11 + 7
        assert "through the index" in (workdir / "logs/genetics/donor_dosages.log").read_text()
        again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
        assert "Nothing to be done" in again.stdout + again.stderr

        # A VCF checksum that does not match: its download fails naming the fix and leaves no file.
        rows["onek1k_vcf"] = (rows["onek1k_vcf"][0], "0" * 64)
        bad = _onek1k_download_config(tmp_path, rows, "bad")
        other = tmp_path / "bad"
        target = "results/genetics/variants/universe.tsv"
        result = snakemake("--cores", "1", "--configfile", str(bad), "--directory", str(other), target, check=False)
    assert result.returncode != 0
    log = (other / "logs/genetics/download/OneK1K.noGP.vcf.gz.log").read_text()
    assert "does not match" in log and "update the sheet" in log
    assert not list((other / "resources/onek1k/download").glob("OneK1K.noGP.vcf.gz*"))


def _bbbc021_download_config(tmp_path, rows: dict[str, tuple[str, str]], name: str) -> Path:
    return _sheet_config(tmp_path, rows, name, "bbbc021_download.yaml", "microscopy")


def test_microscopy_branch_from_a_download_with_a_simclr_checkpoint(tmp_path):
    """BBBC021-format plate zips, metadata, nucleus database and a SimCLR checkpoint in the reference's
    layout served on 127.0.0.1 -> download rules (sha256 checked) -> illumination, crops, ResNet50
    embeddings from the checkpoint -> PCA -> models -> Tables 2/E.3/E.4 and a montage; a wrong plate
    checksum fails and leaves no file."""
    import hashlib
    import json

    from mixmil_workflow.microscopy.demo import DemoSpec, write_demo
    from tests.branches.test_microscopy import _simclr_checkpoint
    from tests.support.http_server import serve

    www = tmp_path / "www"
    config_plates = yaml.safe_load((REPO / "tests/configs/bbbc021_download.yaml").read_text())["microscopy"]["plates"]
    spec = DemoSpec(plates=tuple(config_plates), wells_per_treatment=1, sites=1, cells_per_site=6)
    write_demo(www, spec, seed=1)
    _simclr_checkpoint(www / "model_best.pth")
    files = {
        "bbbc021_image_csv": "BBBC021_v1_image.csv",
        "bbbc021_moa_csv": "BBBC021_v1_moa.csv",
        "bbbc021_compound_csv": "BBBC021_v1_compound.csv",
        "bbbc021_nuclei": "ljosa_jbiomolscreen_2013.sqlite",
        "bbbc021_simclr": "model_best.pth",
        **{f"bbbc021_plate_{p}": f"BBBC021_v1_images_{p}.zip" for p in config_plates},
    }
    downloaded = dict(files, bbbc021_simclr="simclr_resnet50.pth")
    sha = {source: hashlib.sha256((www / name).read_bytes()).hexdigest() for source, name in files.items()}
    workdir = tmp_path / "run"
    with serve(www) as (url, state):
        rows = {source: (f"{url}/{name}", sha[source]) for source, name in files.items()}
        config = _bbbc021_download_config(tmp_path, rows, "good")
        snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
        for source, name in files.items():
            got = workdir / "resources/bbbc021/download" / downloaded[source]
            assert got.read_bytes() == (www / name).read_bytes(), name
        assert not (workdir / "resources/bbbc021/demo").exists()
        again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
        assert "Nothing to be done" in again.stdout + again.stderr

        # A plate whose checksum does not match: its download fails and leaves no file.
        plate = config_plates[0]
        rows[f"bbbc021_plate_{plate}"] = (rows[f"bbbc021_plate_{plate}"][0], "0" * 64)
        bad = _bbbc021_download_config(tmp_path, rows, "bad")
        other = tmp_path / "bad"
        target = f"results/microscopy/crops/{plate}.h5"
        result = snakemake("--cores", "1", "--configfile", str(bad), "--directory", str(other), target, check=False)
    assert result.returncode != 0
    log = (other / f"logs/microscopy/download/BBBC021_v1_images_{plate}.zip.log").read_text()
    assert "does not match" in log
    assert not list((other / "resources/bbbc021/download").glob(f"BBBC021_v1_images_{plate}.zip*"))

    assert assert_jobs_used_only_their_envs(workdir) >= 8 + 3 * 4
    results = workdir / "results/microscopy"
    for plate in config_plates:
        meta = json.loads((results / f"embeddings/{plate}.json").read_text())
        assert meta["weights"].startswith("SimCLR checkpoint") and meta["dim"] == 2048
        assert np.load(results / f"embeddings/{plate}.npy").shape == (meta["n_crops"], 2048)
    table2 = read_table(results / "tables/table2.tsv").set_index("model")
    assert list(table2.index) == ["mixmil", "abmil"] and (table2["n_repeats"] == 2).all()
    assert "embeddings: SimCLR checkpoint" in (results / "tables/table2.md").read_text()
    e4 = read_table(results / "tables/table_e4_components.tsv")
    assert sorted(set(e4["pcs"])) == [4, 8]
    assert (results / "figures/fig_e4_latrunculin_B.png").read_bytes()[:4] == b"\x89PNG"
    assert not (results / "tables/demo_cell_kinds.md").exists()  # no truth outside the demo
    grid = read_table(results / "sweep/sweep_grid.tsv")
    assert sorted(grid["lr"]) == [0.0001, 0.01] and (grid["n_repeats"] == 2).all()
    selected = yaml.safe_load((results / "sweep/selected_models.yaml").read_text())["models"]
    assert selected["abmil"]["lr"] == grid.loc[grid["f1_macro"].idxmax(), "lr"]
