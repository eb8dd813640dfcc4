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


DATASETS_TINY = TINY.parent / "datasets_tiny.yaml"


def dry_run_error(tmp_path, config) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_bring_your_own_bags_config_errors_come_at_parse_time(tmp_path):
    """Each is one line naming the key path first, before any job (and no schema dump)."""
    import pandas as pd

    base = yaml.safe_load(DATASETS_TINY.read_text())
    base["datasets"] = {"cv": base["datasets"]["cv"]}

    def variant(change):
        config = yaml.safe_load(yaml.safe_dump(base))
        change(config)
        return dry_run_error(tmp_path, config)

    out = variant(lambda c: c["datasets"]["cv"].update(protcol=c["datasets"]["cv"].pop("protocol")))
    assert "config: datasets.cv.protcol: unknown key 'protcol'; did you mean 'protocol'?" in out
    assert "additionalProperties" not in out  # no schema dump
    out = variant(lambda c: c["datasets"]["cv"]["protocol"].update(n_repeat=5))
    assert "config: datasets.cv.protocol.n_repeat: unknown key 'n_repeat'; did you mean 'n_repeats'?" in out
    out = variant(lambda c: c["datasets"]["cv"]["protocol"].update(n_folds="five"))
    assert "config: datasets.cv.protocol.n_folds: 'five' is not of type 'integer'" in out
    out = variant(lambda c: c["models"]["mixmil"].update(weight_decay=0.1))
    assert "config: models.mixmil: 'weight_decay' is not a hyperparameter of model type 'mixmil'" in out
    out = variant(lambda c: c["models"]["glmm"].update(n_epochs=10))
    assert "'n_epochs' is not a hyperparameter of model type 'glmm'" in out
    out = variant(lambda c: c["datasets"]["cv"]["tuning"]["search"].update(xgb={"max_depth": [2]}))
    assert "datasets.cv.tuning.search.xgb: 'xgb' is not in datasets.cv.models" in out
    out = variant(lambda c: c["datasets"]["cv"]["tuning"]["search"]["abmil"].update(hiden_dim=[2]))
    assert "'hiden_dim' is not a hyperparameter of model type 'abmil'; did you mean 'hidden_dim'?" in out
    out = variant(lambda c: c["datasets"]["cv"]["protocol"].update(kind="split", n_repeats=3))
    assert "datasets.cv.protocol: n_repeats is 3, but a given split or fold_column fixes the folds" in out

    # Against the bag table itself, when it exists at parse time: folds bounded by the bags, missing labels.
    table = pd.DataFrame({"donor": [f"{k:03d}" for k in range(6)], "dosage": [0, 1, 2, 1, None, 0],
                          "disease": [0, 1] * 3, "age": range(6)})  # fmt: skip
    table.to_csv(tmp_path / "bags.tsv", sep="\t", index=False)

    def with_table(c):
        c["datasets"]["cv"]["table"] = str(tmp_path / "bags.tsv")

    out = variant(lambda c: (with_table(c), c["datasets"]["cv"]["protocol"].update(n_folds=100000)))
    assert "config: datasets.cv.protocol.n_folds is 100000, but" in out and "has 6 bags" in out
    out = variant(lambda c: (with_table(c), c["datasets"]["cv"].update(labels={"dosagee": {"likelihood": "gaussian"}})))
    assert "datasets.cv.labels.dosagee:" in out and "did you mean 'dosage'?" in out
    out = variant(with_table)
    assert "datasets.cv.labels.dosage: 1 bag(s)" in out and "['mixmil', 'glmm', 'abmil'] cannot leave them out" in out


def test_a_smmile_form_that_does_not_fit_a_task_family_is_refused_at_parse_time(tmp_path):
    smmile = TINY.parent / "smmile.yaml"
    config = yaml.safe_load(smmile.read_text())
    config["smmile"]["models"]["smmile"]["form"] = "multilabel"  # the config runs binary and multiclass
    message = dry_run_error(tmp_path, config)
    assert "config: smmile.models.smmile.form is 'multilabel', but the smmile study runs the binary task" in message
    config["smmile"]["models"]["smmile"]["form"] = "auto"
    config["smmile"]["models"]["gated"] = {"type": "momil"}  # not a model of the smmile study
    assert (
        "config: smmile.models.gated.type is 'momil', which is not a model type of the smmile study"
        in dry_run_error(tmp_path, config)
    )
    del config["smmile"]["models"]["gated"]
    config["smmile"]["simulation_tasks"] = ["ordinal"]
    assert "simulation_tasks" in dry_run_error(tmp_path, config)
    # raw slides of a subtyping demo are a multiclass task, and its groups must be the classes the config names
    config["smmile"]["simulation_tasks"] = ["binary"]
    config["smmile"]["camelyon16"]["demo"]["lesion_classes"] = ["LUAD", "LUSC"]
    config["smmile"]["models"]["smmile"]["form"] = "binary"
    message = dry_run_error(tmp_path, config)
    assert "config: smmile.models.smmile.form is 'binary', but the smmile study runs the multiclass task" in message
    config["smmile"]["models"]["smmile"]["form"] = "auto"
    config["smmile"]["camelyon16"]["classes"] = {"LUAD": 1}
    message = dry_run_error(tmp_path, config)
    assert "smmile.camelyon16.classes {'LUAD': 1} lacks the demo's annotation group(s) ['LUSC']" in message
