"""Training-curve figures: the loss histories the fit jobs write, read back and drawn per model."""

from __future__ import annotations

import numpy as np

from mixmil_workflow.io import save_npz
from mixmil_workflow.studies.training_curves import read_histories, training_curves_figure


def test_histories_of_one_fit_of_several_and_of_none(tmp_path):
    save_npz(tmp_path / "one.npz", loss_history=np.array([3.0, 2.0, 1.5]), weights=np.zeros(2))
    save_npz(tmp_path / "several.npz", loss_history=np.arange(1.0, 6.0), loss_history_offsets=np.array([0, 2, 2, 5]))
    save_npz(tmp_path / "closed_form.npz", loss_history=np.zeros(0))
    save_npz(tmp_path / "older.npz", weights=np.zeros(2))  # written before histories were kept
    [one] = read_histories(tmp_path / "one.npz")
    np.testing.assert_array_equal(one, [3.0, 2.0, 1.5])
    several = read_histories(tmp_path / "several.npz")
    assert [list(h) for h in several] == [[1.0, 2.0], [3.0, 4.0, 5.0]]  # the empty middle fit is left out
    assert read_histories(tmp_path / "closed_form.npz") == [] == read_histories(tmp_path / "older.npz")


def test_the_figure_names_closed_form_models_and_handles_negative_losses(tmp_path):
    curves = {
        "mixmil": [np.linspace(2, 1, 50), np.linspace(2.1, 1.1, 50)],
        "glmm": [],
        "gaussian": [np.linspace(1, -1, 20)],
    }
    training_curves_figure(curves, "a study", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    training_curves_figure({"glmm": []}, "closed form only", tmp_path / "none.png")
    assert (tmp_path / "none.png").stat().st_size > 0
