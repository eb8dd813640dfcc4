import json
from pathlib import Path

import numpy as np
import pytest

from mixmil_workflow import Bags
from mixmil_workflow.metrics import spearman_per_output
from mixmil_workflow.models import TreeMIL, pool_bags
from tests.support.data import ragged_bags

REPO = Path(__file__).resolve().parents[2]
TABLE_E1 = REPO / "benchmarks" / "investigations" / "table_e1"  # the Table E.1 investigations
QUICK = {"random_forest": {"n_estimators": 50, "max_depth": 10}, "xgboost": {"n_estimators": 100, "max_depth": 3}}


def test_poolings_match_numpy():
    bags_list = ragged_bags(n_bags=6)
    bags = Bags.from_list(bags_list)
    x = [b.astype(np.float32).astype(np.float64) for b in bags_list]
    np.testing.assert_allclose(pool_bags(bags, "mean"), [b.mean(0) for b in x], rtol=1e-6)
    np.testing.assert_allclose(pool_bags(bags, "median"), [np.median(b, 0) for b in x], rtol=1e-6)
    moments = pool_bags(bags, "moments")
    assert moments.shape == (6, 12)
    np.testing.assert_allclose(moments[:, 8:], [(b**3).mean(0) for b in x], rtol=1e-5)


@pytest.mark.parametrize("kind", ["random_forest", "xgboost"])
@pytest.mark.parametrize("pooling", ["mean", "moments", "instance"])
def test_fit_predict_correlates_and_is_seeded(small_sim, kind, pooling, tmp_path):
    model = TreeMIL(kind=kind, pooling=pooling, overrides=QUICK[kind], seed=1)
    model.fit(small_sim.bags("train"), small_sim.y_train)
    pred = model.predict(small_sim.bags("test"))
    assert pred.bag_effect.shape == (100, 2) and np.all((pred.mean >= 0) & (pred.mean <= 2 + 1e-6))
    assert spearman_per_output(pred.bag_effect, small_sim.u_test).mean() > 0.15
    assert model.instance_scores(small_sim.bags("test")) is None
    again = TreeMIL(kind=kind, pooling=pooling, overrides=QUICK[kind], seed=1).fit(
        small_sim.bags("train"), small_sim.y_train
    )
    np.testing.assert_array_equal(again.predict(small_sim.bags("test")).mean, pred.mean)
    model.save(tmp_path / "trees.pkl")
    np.testing.assert_array_equal(TreeMIL.load(tmp_path / "trees.pkl").predict(small_sim.bags("test")).mean, pred.mean)


def test_random_search_picks_from_the_paper_space(small_sim):
    model = TreeMIL(kind="random_forest", pooling="mean", n_iter=3, cv_folds=3, seed=0)
    model.fit(small_sim.bags("train"), small_sim.y_train[:, :1])
    params = model.best_params[0]
    assert params["n_estimators"] in {50, 100, 150, 200, 500}
    assert params["max_depth"] in {10, 20, 30, 50}


@pytest.mark.parametrize("pooling", ["mean", "instance"])
def test_one_output_fitted_alone_equals_that_output_of_the_full_fit(small_sim, pooling):
    # Benchmarks fit single outputs of a slow search with fit_output; its numbers must be the job's.
    model = TreeMIL(kind="xgboost", pooling=pooling, n_iter=2, cv_folds=2, seed=3)
    model.fit(small_sim.bags("train"), small_sim.y_train)
    features, sizes = model.features(small_sim.bags("train")), small_sim.bags("train").sizes.numpy()
    alone, params = model.fit_output(features, small_sim.y_train[:, 1], sizes, 1)
    assert params == model.best_params[1]
    test_bags = small_sim.bags("test")
    offsets, test_features = test_bags.offsets.numpy(), model.features(test_bags)
    np.testing.assert_array_equal(
        model.bag_predictions(alone, test_features, offsets), model.predict(test_bags).bag_effect[:, 1]
    )


@pytest.mark.parametrize("kind", ["random_forest", "xgboost"])
@pytest.mark.parametrize("search", [False, True])
def test_spec_threads_parallelise_the_trees_without_changing_the_numbers(small_sim, kind, search):
    """A job's numbers must not depend on how many cores Snakemake gave it (nor vary between runs)."""
    from mixmil_workflow.models.registry import build as build_model

    spec = {"type": kind, "pooling": "mean"}
    spec |= {"n_iter": 2, "cv_folds": 2} if search else {"pooling": "instance", "overrides": QUICK[kind]}
    y = small_sim.y_train[:, :1]  # one output keeps the search short
    preds, params = [], []
    for threads in (1, 2, 2):
        model = build_model({**spec, "threads": threads}, 3)
        assert model.config.n_jobs == threads
        preds.append(model.fit(small_sim.bags("train"), y).predict(small_sim.bags("test")).mean)
        params.append(model.best_params)
        assert all(fitted.get_params()["n_jobs"] == 1 for fitted in model.models)  # predicts on one thread
    assert params[0] == params[1] == params[2]
    np.testing.assert_array_equal(preds[0], preds[1])
    np.testing.assert_array_equal(preds[1], preds[2])
    assert build_model({"type": kind}, 3).config.n_jobs == 1


def test_learning_rate_sampling_changes_only_how_the_learning_rate_is_drawn():
    from scipy.stats import loguniform
    from sklearn.model_selection import ParameterSampler

    from mixmil_workflow.models.trees import search_space

    draws = {
        sampling: list(ParameterSampler(search_space("xgboost", sampling), n_iter=2000, random_state=0))
        for sampling in ("log_uniform", "uniform")
    }
    rates = {sampling: np.array([d["learning_rate"] for d in ds]) for sampling, ds in draws.items()}
    assert all(((r >= 1e-3) & (r <= 1.0)).all() for r in rates.values())
    # P(rate > 0.05): log-uniform log10(20) / 3 = 0.43; uniform 0.95.
    assert abs((rates["log_uniform"] > 0.05).mean() - np.log10(20) / 3) < 0.04
    assert abs((rates["uniform"] > 0.05).mean() - 0.95 / 0.999) < 0.02
    assert isinstance(search_space("xgboost")["learning_rate"].dist, type(loguniform(1e-3, 1.0).dist))
    # Same random state: every other hyperparameter is drawn identically.
    others = [{k: v for k, v in d.items() if k != "learning_rate"} for d in draws["log_uniform"]]
    assert others == [{k: v for k, v in d.items() if k != "learning_rate"} for d in draws["uniform"]]


def test_learning_rate_sampling_is_used_by_the_search_and_checked(small_sim):
    train, y = small_sim.bags("train"), small_sim.y_train[:, :1]
    fitted = {}
    for sampling in ("log_uniform", "uniform"):
        model = TreeMIL(kind="xgboost", pooling="mean", n_iter=4, cv_folds=2, learning_rate_sampling=sampling, seed=1)
        fitted[sampling] = model.fit(train, y).best_params[0]
    assert fitted["log_uniform"]["learning_rate"] != fitted["uniform"]["learning_rate"]
    with pytest.raises(ValueError, match="learning_rate_sampling must be one of"):
        TreeMIL(kind="xgboost", learning_rate_sampling="linear")
    with pytest.raises(ValueError, match="applies to XGBoost only"):
        TreeMIL(kind="random_forest", learning_rate_sampling="uniform")


@pytest.mark.parametrize("kind", ["random_forest", "xgboost"])
def test_benchmark_library_defaults_are_the_estimators_defaults(small_sim, kind):
    """Table E.1 investigation instance_level_trees.py --library-defaults names the estimators' defaults explicitly; a
    library release that changed them would make its results describe other models."""
    model = TreeMIL(
        kind=kind, pooling="mean", overrides=instance_level_trees_benchmark().LIBRARY_DEFAULTS[kind], seed=1
    )
    features = model.features(small_sim.bags("train"))
    target = model._target(small_sim.y_train[:, 0])
    explicit, _ = model.fit_output(features, small_sim.y_train[:, 0], small_sim.bags("train").sizes.numpy(), 0)
    untouched = model._estimator(1 + 0).fit(features, target)  # fit_output seeds output p with seed + p
    test = model.features(small_sim.bags("test"))
    np.testing.assert_array_equal(explicit.predict(test), untouched.predict(test))


def test_table_e1_xgboost_defaults_runs_the_benchmarks_library_defaults():
    """docs/results.md reports config/table_e1.yaml's xgboost_defaults as the library-defaults reading."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "table_e1.yaml").read_text())
    spec = config["models"]["xgboost_defaults"]
    assert spec["overrides"] == instance_level_trees_benchmark().LIBRARY_DEFAULTS["xgboost"]
    assert "xgboost_defaults" in config["simulation"]["models"]


def instance_level_trees_benchmark():
    return load_benchmark("instance_level_trees")


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (one importing a sibling needs benchmarks/ on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, TABLE_E1 / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["random_forest", "xgboost"])
def test_instance_level_selection_replays_the_jobs_search(small_sim, monkeypatch, kind):
    """Table E.1 investigation instance_level_selection.py's row-scored choice is the search's own: same combinations,
    folds and fits, so its bag-scored alternative differs from the job only in the criterion."""
    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_selection")
    model = TreeMIL(kind=kind, pooling="instance", n_iter=3, cv_folds=3, seed=2)
    # One process: joblib's worker processes (reused across tests) would have to import the benchmark
    # module from the sys.path of whichever test started them.
    model.config.n_jobs = 1
    train, test = small_sim.bags("train"), small_sim.bags("test")
    # 60 bags keep the search's fits (up to 500 trees) to seconds.
    sizes, y = train.sizes.numpy()[:60], small_sim.y_train[:60, 1]
    x = model.features(train)[: sizes.sum()]
    fitted, params = model.fit_output(x, y, sizes, 1)
    table, estimator = bench.replay_search(model, x, y, sizes, 1)
    assert len(table) == 3
    assert table[bench.chosen(table, "rows")]["params"] == params
    target_rows = np.repeat(model._target(y), sizes)
    rho = bench.held_out_score(
        model, estimator, params, x, target_rows, model.features(test), test.offsets.numpy(), small_sim.u_test[:, 1]
    )
    expected = spearman_per_output(model.bag_predictions(fitted, model.features(test), test.offsets.numpy())[:, None],
                                   small_sim.u_test[:, 1:2])[0]  # fmt: skip
    assert rho == expected  # exactly: XGBoost's float32 predictions must be averaged as the job does
    for row in table:  # the bag criterion is a Spearman of fold bag means, distinct from the row one
        assert -1.0 <= row["cv_bags"] <= 1.0 and -1.0 <= row["cv_rows"] <= 1.0
    assert any(row["cv_bags"] != row["cv_rows"] for row in table)


def test_bag_means_averages_consecutive_rows(monkeypatch):
    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_selection")
    np.testing.assert_allclose(bench.bag_means(np.array([1.0, 3.0, 5.0, 2.0]), np.array([2, 1, 1])), [2.0, 5.0, 2.0])


def test_benchmark_combine_merges_parts_and_keeps_the_first_runs_sources(tmp_path, monkeypatch):
    """instance_level_trees.py --combine on a record that was itself combined: every row keeps its own
    thread count, and the record names the runs' own files, not the intermediate record."""
    bench = instance_level_trees_benchmark()
    settings = {"kind": "random_forest", "repeat": "0", "seed": 0, "learning_rate_sampling": None}

    def part(name, threads, rows, combined_from=None):
        record = {"settings": {**settings, "threads": threads, "combined_from": combined_from or []}, "rows": rows}
        (tmp_path / name).write_text(json.dumps(record))
        return str(tmp_path / name)

    def row(p, pooling, rho, threads=None):
        extra = {"threads": threads} if threads else {}
        return extra | {"output": p, "pooling": pooling, "spearman": rho, "params": {}, "seconds": 60.0}

    first = part("a.json", 6, [row(1, "instance", 0.4), row(1, "mean", 0.3)])
    second = part("b.json", 2, [row(9, "instance", 0.1), row(9, "mean", 0.3)])
    out = tmp_path / "combined"
    for parts in ([first, second], [str(out.with_suffix(".json")), part("c.json", 2, [row(5, "mean", 0.5)])]):
        monkeypatch.setattr("sys.argv", ["x", "--kind", "random_forest", "--out", str(out), "--combine", *parts])
        bench.main()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["combined_from"] == [first, second, str(tmp_path / "c.json")]
    assert [(r["output"], r["pooling"], r["threads"]) for r in record["rows"]] == [
        (1, "instance", 6), (1, "mean", 6), (5, "mean", 2), (9, "instance", 2), (9, "mean", 2)
    ]  # fmt: skip
    assert record["summary"]["mean"]["n_outputs"] == 3 and record["summary"]["instance"]["n_outputs"] == 2
    assert record["summary"]["instance_minus_mean"]["spearman"] == pytest.approx(((0.4 - 0.3) + (0.1 - 0.3)) / 2)


def test_forest_leaves_benchmark_fits_the_rf_jobs_with_its_leaf_size(small_sim, monkeypatch):
    """Table E.1 investigation instance_level_forest_leaves.py fits the workflow's rf_instance / rf_mean models (their
    seeds) with FOREST and the given leaf size in place of the search."""
    from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed

    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_forest_leaves")
    config = {"seed": 4, "models": {f"rf_{p}": {"type": "random_forest", "pooling": p} for p in ("instance", "mean")}}
    train, test = small_sim.bags("train"), small_sim.bags("test")
    for pooling, leaf in (("instance", 16), ("mean", 1)):
        row = bench.fit_leaf(small_sim, 1, pooling, leaf, config, "0", 2)
        assert row["params"] == {**bench.FOREST, "min_samples_leaf": leaf} and row["min_samples_leaf"] == leaf
        seed = derive_seed(4, "fit", f"rf_{pooling}", DEFAULT_SCENARIO, "0")
        model = TreeMIL(kind="random_forest", pooling=pooling, seed=seed, overrides=bench.forest(leaf))
        fitted, _ = model.fit_output(model.features(train), small_sim.y_train[:, 1], train.sizes.numpy(), 1)
        expected = model.bag_predictions(fitted, model.features(test), test.offsets.numpy())
        assert row["spearman"] == spearman_per_output(expected[:, None], small_sim.u_test[:, 1:2])[0]


def test_forest_leaves_summary_pairs_each_leaf_with_the_mean_pooled_forest(monkeypatch):
    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_forest_leaves")

    def row(p, pooling, leaf, rho):
        return {"output": p, "pooling": pooling, "min_samples_leaf": leaf, "spearman": rho}

    rows = [row(0, "mean", 1, 0.5), row(1, "mean", 1, 0.3), row(0, "instance", 64, 0.6), row(1, "instance", 64, 0.2)]
    rows += [row(0, "instance", 1, 0.1), row(2, "instance", 1, 0.4)]  # output 2 has no mean-pooled fit
    summary = {(s["pooling"], s["min_samples_leaf"]): s for s in bench.summarise(rows)}
    assert list(summary) == [("instance", 1), ("instance", 64), ("mean", 1)]
    assert summary[("instance", 64)]["minus_mean"] == pytest.approx(((0.6 - 0.5) + (0.2 - 0.3)) / 2)
    assert summary[("instance", 1)]["n_paired"] == 1 and summary[("instance", 1)]["n_outputs"] == 2
    assert summary[("instance", 1)]["minus_mean"] == pytest.approx(0.1 - 0.5)
    assert "minus_mean" not in summary[("mean", 1)]


def test_benchmark_combine_takes_the_selection_replays_row_scored_choice_as_the_instance_row(tmp_path, monkeypatch):
    """An instance_level_selection.py record joins instance_level_trees.py's: its row-scored choice is the job's."""
    bench = instance_level_trees_benchmark()
    trees = {
        "settings": {"kind": "random_forest", "repeat": "0", "seed": 0, "learning_rate_sampling": None, "threads": 2},
        "rows": [{"output": 5, "pooling": "mean", "spearman": 0.45, "params": {}, "seconds": 60.0}],
    }
    combos = [{"combination": 0, "params": {"max_depth": 10}}, {"combination": 1, "params": {"max_depth": 20}}]
    selection = {
        "settings": {"kind": "random_forest", "repeat": "0", "seed": 0, "threads": 2},
        "outputs": [
            {"output": 5, "seconds": 600.0, "combinations": combos,
             "choice": {"rows": {"combination": 1, "test": 0.28}, "bags": {"combination": 0, "test": 0.3}}}
        ],
    }  # fmt: skip
    (tmp_path / "trees.json").write_text(json.dumps(trees))
    (tmp_path / "selection.json").write_text(json.dumps(selection))
    out = tmp_path / "combined"
    parts = [str(tmp_path / "trees.json"), str(tmp_path / "selection.json")]
    monkeypatch.setattr("sys.argv", ["x", "--kind", "random_forest", "--out", str(out), "--combine", *parts])
    bench.main()
    record = json.loads(out.with_suffix(".json").read_text())
    instance = [r for r in record["rows"] if r["pooling"] == "instance"]
    assert instance == [
        {
            "threads": 2,
            "output": 5,
            "pooling": "instance",
            "spearman": 0.28,
            "params": {"max_depth": 20},
            "seconds": 600.0,
        }
    ]
    assert record["summary"]["instance_minus_mean"]["spearman"] == pytest.approx(0.28 - 0.45)


def test_forest_leaves_cv_scores_each_leaf_as_the_workflows_search_would(small_sim, monkeypatch):
    """--cv's row-scored CV of each leaf size equals scikit-learn's own search over those leaf sizes on the
    rf_instance job's folds and scorer, and each criterion's choice is the test score reported for it."""
    from sklearn.model_selection import GridSearchCV

    from mixmil_workflow.models.trees import _bag_folds, _spearman_scorer
    from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed

    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_forest_leaves")
    monkeypatch.setattr(bench, "FOREST", {**bench.FOREST, "n_estimators": 20})  # seconds, not minutes
    config = {"seed": 4, "models": {"rf_instance": {"type": "random_forest", "pooling": "instance"}}}
    leaves, p = [1, 64, 512], 1
    result = bench.cross_validate_leaves(small_sim, p, leaves, config, "0", 1)  # in-process (see above)
    train = small_sim.bags("train")
    sizes = train.sizes.numpy()
    seed = derive_seed(4, "fit", "rf_instance", DEFAULT_SCENARIO, "0")
    model = TreeMIL(kind="random_forest", pooling="instance", seed=seed)
    grid = GridSearchCV(
        model._estimator(seed + p),
        [{k: [v] for k, v in bench.forest(leaf).items()} for leaf in leaves],
        cv=list(_bag_folds(len(sizes), sizes, 5, seed)),
        scoring=_spearman_scorer,
    ).fit(model.features(train), np.repeat(small_sim.y_train[:, p], sizes))
    np.testing.assert_allclose(
        [r["cv_rows"] for r in result["cv"]], grid.cv_results_["mean_test_score"], rtol=0, atol=1e-12
    )
    assert result["chosen"]["rows"] == leaves[int(np.argmax(grid.cv_results_["mean_test_score"]))]
    rows = [
        {"output": p, "pooling": "instance", "min_samples_leaf": leaf, "spearman": 0.1 * i}
        for i, leaf in enumerate(leaves)
    ] + [{"output": p, "pooling": "mean", "min_samples_leaf": 1, "spearman": 0.05}]
    summary = bench.summarise_cv(rows, [result])
    for criterion in ("rows", "bags"):
        assert summary[criterion]["spearman"] == 0.1 * leaves.index(result["chosen"][criterion])
        assert summary[criterion]["minus_mean"] == pytest.approx(0.1 * leaves.index(result["chosen"][criterion]) - 0.05)


def test_forest_leaves_combine_merges_runs_on_other_outputs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_forest_leaves")
    settings = {"repeat": "0", "seed": 0, "threads": 1, "forest": bench.FOREST, "mean_leaf": 1}

    def part(name, p, rho, chosen):
        rows = [{"output": p, "pooling": "mean", "min_samples_leaf": 1, "spearman": 0.4, "seconds": 1.0}]
        rows += [{"output": p, "pooling": "instance", "min_samples_leaf": leaf, "spearman": rho + leaf / 1e4,
                  "seconds": 1.0} for leaf in (1, 64)]  # fmt: skip
        cv = [{"output": p, "cv": [], "chosen": {"rows": chosen, "bags": 64}}]
        (tmp_path / name).write_text(json.dumps({"settings": settings, "rows": rows, "cv": cv}))
        return tmp_path / name

    a, b = part("a.json", 3, 0.2, 1), part("b.json", 0, 0.3, 64)
    bench.combine([a, b], tmp_path / "both")
    record = json.loads((tmp_path / "both.json").read_text())
    assert [c["output"] for c in record["cv"]] == [0, 3]
    assert record["settings"]["combined_from"] == [str(a), str(b)]
    assert record["cv_summary"]["rows"]["spearman"] == pytest.approx(((0.3 + 0.0064) + (0.2 + 0.0001)) / 2)
    assert record["cv_summary"]["bags"]["chosen"] == {"0": 64, "3": 64}
    assert record["cv_summary"]["bags"]["minus_mean"] == pytest.approx(((0.3 + 0.0064) + (0.2 + 0.0064)) / 2 - 0.4)
    assert "--outputs 0 3 --leaves 1 64" in record["command"]
    with pytest.raises(SystemExit, match="more than one part"):
        bench.combine([a, part("c.json", 3, 0.1, 1)], tmp_path / "clash")
    with pytest.raises(SystemExit, match="differ"):
        settings["seed"] = 1
        bench.combine([a, part("d.json", 5, 0.1, 1)], tmp_path / "other_seed")


def test_search_space_searches_the_given_values_with_the_overrides_fixed(small_sim, monkeypatch):
    """A spec's search_space replaces Table C.3: its choice is the forest-leaves benchmark's row-scored CV
    choice on the same job's folds and seeds, refitted as that forest, and best_params names the whole model."""
    from mixmil_workflow.models.registry import build as build_model
    from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed

    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_forest_leaves")
    forest = {**bench.FOREST, "n_estimators": 20}  # seconds, not minutes
    monkeypatch.setattr(bench, "FOREST", forest)
    leaves, p = [1, 64, 512], 1
    spec = {"type": "random_forest", "pooling": "instance", "overrides": forest}
    spec["search_space"] = {"min_samples_leaf": leaves}
    config = {"seed": 4, "models": {"rf_instance": spec}}
    seed = derive_seed(4, "fit", "rf_instance", DEFAULT_SCENARIO, "0")
    model = build_model(spec, seed)
    train, test = small_sim.bags("train"), small_sim.bags("test")
    model.fit(train, small_sim.y_train[:, : p + 1])
    chosen = bench.cross_validate_leaves(small_sim, p, leaves, config, "0", 1)["chosen"]["rows"]
    assert model.best_params[p] == {**forest, "min_samples_leaf": chosen}
    fixed = TreeMIL(kind="random_forest", pooling="instance", seed=seed, overrides=bench.forest(chosen))
    fixed_model, _ = fixed.fit_output(fixed.features(train), small_sim.y_train[:, p], train.sizes.numpy(), p)
    np.testing.assert_array_equal(
        model.predict(test).bag_effect[:, p],
        fixed.bag_predictions(fixed_model, fixed.features(test), test.offsets.numpy()),
    )


def test_search_space_is_a_grid_up_to_n_iter_combinations_and_drawn_beyond():
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    space = {"min_samples_leaf": [1, 2, 4], "max_depth": [3, 5]}
    assert isinstance(TreeMIL(search_space=space, n_iter=6)._search(0, []), GridSearchCV)
    drawn = TreeMIL(search_space=space, n_iter=4)._search(0, [])
    assert isinstance(drawn, RandomizedSearchCV) and drawn.n_iter == 4
    assert isinstance(TreeMIL()._search(0, []), RandomizedSearchCV)  # Table C.3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"search_space": {"min_leaf": [1, 2]}}, "'min_leaf' is not a random_forest hyperparameter"),
        ({"search_space": {"min_samples_leaf": []}}, "min_samples_leaf must be a non-empty list"),
        ({"search_space": {"min_samples_leaf": 4}}, "min_samples_leaf must be a non-empty list"),
        ({"search_space": {}}, "must map hyperparameter names to lists"),
        ({"search_space": {"max_depth": [3]}, "overrides": {"max_depth": 5}}, "max_depth both searched and fixed"),
        ({"search_space": {"max_depth": [3]}, "overrides": {"depth": 5}}, "overrides: 'depth' is not"),
        (
            {"kind": "xgboost", "search_space": {"max_depth": [3]}, "learning_rate_sampling": "uniform"},
            "with a search_space, list the rates",
        ),
    ],
)
def test_search_space_mistakes_are_named_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        TreeMIL(**options)


def test_table_e1_rf_instance_leaves_is_the_forest_leaves_benchmarks_search(monkeypatch):
    """docs/results.md reports config/table_e1.yaml's rf_instance_leaves as the benchmark's CV over leaf sizes."""
    import yaml

    from mixmil_workflow.models.registry import build as build_model

    monkeypatch.syspath_prepend(str(TABLE_E1))
    bench = load_benchmark("instance_level_forest_leaves")
    config = yaml.safe_load((REPO / "config" / "table_e1.yaml").read_text())
    spec = config["models"]["rf_instance_leaves"]
    assert spec["overrides"] == bench.FOREST and spec["search_space"] == {"min_samples_leaf": list(bench.LEAVES)}
    assert spec["pooling"] == "instance" and "rf_instance_leaves" in config["simulation"]["models"]
    assert build_model(spec, 0).config.search_space == {"min_samples_leaf": list(bench.LEAVES)}


def test_fit_shows_one_progress_line_per_output_unless_switched_off(small_sim, capsys):
    train, y = small_sim.bags("train"), small_sim.y_train[:, :2]
    TreeMIL(kind="random_forest", pooling="mean", overrides=QUICK["random_forest"], seed=1).fit(train, y)
    shown = capsys.readouterr().err
    assert "random_forest (mean)" in shown and "2/2" in shown and "output 1: {'n_estimators': 50" in shown
    quiet = TreeMIL(kind="random_forest", pooling="mean", overrides=QUICK["random_forest"], seed=1, progress=False)
    quiet.fit(train, y)
    assert capsys.readouterr().err == ""


def test_simulation_fit_keeps_each_outputs_choice_and_the_aggregate_tabulates_it(small_sim, tmp_path):
    from mixmil_workflow.io import save_npz
    from mixmil_workflow.studies.simulation import hyperparameter_table, run_model

    spec = {
        "type": "random_forest",
        "pooling": "mean",
        "overrides": {"n_estimators": 20, "max_features": "log2"},
        "search_space": {"min_samples_leaf": [1, 8, 32]},
        "progress": False,
    }
    result = run_model(spec, small_sim, seed=4)
    chosen = json.loads(str(result["hyperparameters"]))
    assert len(chosen) == small_sim.y_train.shape[1]
    assert all(c["n_estimators"] == 20 and c["min_samples_leaf"] in (1, 8, 32) for c in chosen)
    # The same choice as the model's own fit with the same seed.
    model = TreeMIL(kind="random_forest", seed=4, **{k: v for k, v in spec.items() if k != "type"})
    assert chosen == model.fit(small_sim.bags("train"), small_sim.y_train).best_params
    save_npz(tmp_path / "rf.npz", **result)
    glmm = run_model({"type": "glmm"}, small_sim, seed=4)
    assert "hyperparameters" not in glmm
    save_npz(tmp_path / "glmm.npz", **glmm)
    table = hyperparameter_table(
        [("rf", "default", 0), ("glmm", "default", 0)], [tmp_path / "rf.npz", tmp_path / "glmm.npz"]
    )
    assert list(table["model"]) == ["rf", "rf"] and list(table["output"]) == [0, 1]
    assert list(table["min_samples_leaf"]) == [c["min_samples_leaf"] for c in chosen]
    assert list(table["max_features"]) == ["log2", "log2"]
    empty = hyperparameter_table([("glmm", "default", 0)], [tmp_path / "glmm.npz"])
    assert empty.empty and list(empty.columns) == ["model", "scenario", "repeat", "output"]
