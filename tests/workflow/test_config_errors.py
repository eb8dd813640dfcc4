"""A bad configuration is one error naming the field, before any job runs."""

from __future__ import annotations

import yaml

from tests.support.workflow import TINY, snakemake


def test_invalid_config_is_rejected_naming_the_field(tmp_path):
    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["n_repeats"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "0 is less than the minimum of 1" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["models"].append("no_such_model")
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert "simulation.models lists 'no_such_model'" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["reference_model"] = "abmil_not_run"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "simulation.reference_model is 'abmil_not_run'" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["costs"]["models"].append("rf_mean")
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert "costs.models lists 'rf_mean' of type 'random_forest'" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["models"]["mixmil"]["type"] = "mixmill"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "models.mixmil.type is 'mixmill', which is not a model type" in result.stdout + result.stderr
