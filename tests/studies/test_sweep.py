import pandas as pd
import pytest

from mixmil_workflow.studies.sweep import expand_grid, summarise_sweep, sweep_combinations, sweep_runs

MODELS = {"abmil": {"type": "abmil", "lr": 5e-4, "n_epochs": 100, "scenarios": ["default"]}, "glmm": {"type": "glmm"}}


def test_grid_expansion_is_the_full_product_in_a_stable_order():
    combos = expand_grid({"weight_decay": [0.0, 1e-4], "lr": [1e-3, 1e-4, 1e-5]})
    assert len(combos) == 6
    assert combos[0] == {"lr": 1e-3, "weight_decay": 0.0} and combos[-1] == {"lr": 1e-5, "weight_decay": 1e-4}
    assert combos == expand_grid({"lr": [1e-3, 1e-4, 1e-5], "weight_decay": [0.0, 1e-4]})


def test_combinations_override_the_model_entry_and_drop_scenarios():
    all_combos = sweep_combinations({"grid": {"abmil": {"lr": [1e-2, 1e-3]}}}, MODELS)
    assert sweep_runs(all_combos, 2) == [("abmil", 0, 0), ("abmil", 0, 1), ("abmil", 1, 0), ("abmil", 1, 1)]
    combos = all_combos["abmil"]
    assert [c["lr"] for c in combos] == [1e-2, 1e-3]
    assert all(c["n_epochs"] == 100 and "scenarios" not in c for c in combos)


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"nope": {"lr": [1]}}, "not defined under models"),
        ({"glmm": {"lr": [1]}}, "neural MIL baselines"),
        ({"abmil": {"momentum": [1]}}, "varies \\['momentum'\\]"),
    ],
)
def test_bad_sweep_configs_name_the_problem(grid, message):
    with pytest.raises(ValueError, match=message):
        sweep_combinations({"grid": grid}, MODELS)


def test_selection_takes_the_best_mean_validation_spearman():
    combos = sweep_combinations({"grid": {"abmil": {"lr": [1e-2, 1e-3]}}}, MODELS)
    rows = []
    scores = {(0, 0): 0.2, (0, 1): 0.4, (1, 0): 0.5, (1, 1): 0.5}  # combination 1 wins on the mean
    for (combo, repeat), rho in scores.items():
        for output, offset in ((0, -0.1), (1, 0.1)):
            rows.append({"model": "abmil", "combination": combo, "repeat": repeat, "output": output,
                         "spearman": rho + offset})  # fmt: skip
    grid, best = summarise_sweep(pd.DataFrame(rows), combos)
    assert list(grid["spearman_mean"].round(6)) == [0.3, 0.5]
    assert grid.loc[0, "spearman_se"] == pytest.approx(0.1)
    assert best.loc[0, "combination"] == 1 and best.loc[0, "lr"] == 1e-3
