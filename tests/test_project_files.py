"""The licence and citation files agree with the package metadata and name the paper reproduced."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER_TITLE = "Mixed Models with Multiple Instance Learning"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_license_file_is_the_licence_pyproject_declares():
    declared = _pyproject()["license"]
    text = (REPO / "LICENSE").read_text()
    assert declared == "MIT"
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text


def test_citation_file_cites_the_paper_under_the_same_licence():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for field in ("message", "title", "authors"):
        assert cff[field], field
    assert cff["license"] == _pyproject()["license"]
    paper = cff["preferred-citation"]
    assert paper["title"] == PAPER_TITLE
    assert paper["year"] == 2024 and "AISTATS" in paper["collection-title"]
    assert [a["family-names"] for a in paper["authors"]] == ["Engelmann", "Palma", "Tomczak", "Theis", "Casale"]
    # The paper's arXiv record, as the README and the reference notes cite it.
    assert any(i["value"] == "arXiv:2311.02455" for i in paper["identifiers"])
