"""The per-dataset baseline hyperparameters under config/models/ (the paper's Tables C.2, C.6, C.8)."""

from pathlib import Path

import pytest
import yaml

from mixmil_workflow.models.registry import build as build_model


def _paper_tables():
    root = Path(__file__).resolve().parents[2] / "config" / "models"
    return sorted(root.glob("*.yaml"))


@pytest.mark.parametrize("path", _paper_tables(), ids=lambda p: p.stem)
def test_per_dataset_hyperparameter_files_validate_and_build(path):
    """config/models/*.yaml (Tables C.2, C.6, C.8) pass the schema and configure every model."""
    import jsonschema

    schema = yaml.safe_load((path.parents[1] / "config.schema.yaml").read_text())
    entries = yaml.safe_load(path.read_text())
    jsonschema.validate(entries, {**schema, "required": ["models"]})
    for spec in entries["models"].values():
        model = build_model(spec, seed=0)
        for key, value in spec.items():
            if key != "type":
                assert getattr(model.config, key) == value


def test_paper_config_uses_the_table_c2_hyperparameters():
    root = Path(__file__).resolve().parents[2] / "config"
    table = yaml.safe_load((root / "models" / "simulation_genetics.yaml").read_text())["models"]
    paper = yaml.safe_load((root / "paper.yaml").read_text())["models"]
    for name, spec in table.items():
        assert {k: paper[name][k] for k in spec} == spec


def test_paper_config_trains_camelyon16_with_the_table_c8_hyperparameters():
    root = Path(__file__).resolve().parents[2] / "config"
    table = yaml.safe_load((root / "models" / "camelyon16.yaml").read_text())["models"]
    paper = yaml.safe_load((root / "paper.yaml").read_text())
    assert paper["models"] | table == paper["models"]  # every Table C.8 entry, unchanged
    assert set(paper["camelyon16"]["models"]) == set(table)
    assert paper["camelyon16"]["source"] == "download" and paper["camelyon16"]["n_seeds"] == 5


def test_config_readme_describes_every_shipped_configuration():
    """Each config/*.yaml and config/models/*.yaml is named in config/README.md's list (a new one needs a line)."""
    root = Path(__file__).resolve().parents[2] / "config"
    readme = (root / "README.md").read_text()
    shipped = [p.relative_to(root).as_posix() for p in [*root.glob("*.yaml"), *root.glob("models/*.yaml")]]
    missing = [name for name in shipped if f"`{name}`" not in readme and name != "config.schema.yaml"]
    assert not missing, f"config/README.md does not describe {missing}"
