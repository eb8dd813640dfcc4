"""Cross-validated fits of bring-your-own-bags datasets: one model, one label, a set of (repeat, fold) fits.

Each fit learns its preprocessing from its training bags, balances classes when asked, tunes the model's
hyperparameters by an inner k-fold over its training bags when a search space is given (nested CV: the
held-out bags of the outer fold are never seen by the search) and predicts the held-out bags. A job runs
one (repeat, fold) or all of a model's folds and repeats; each fit's seed comes from its own identity, so
both give the same numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.own_bags.input import DatasetError, LabelSpec, prepare_label_column
from mixmil_workflow.own_bags.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC, score_predictions
from mixmil_workflow.own_bags.preprocess import FittedPreprocessing, Preprocessing, fit_preprocessing
from mixmil_workflow.own_bags.protocol import fold_column, kfold, strata

CLASS_WEIGHTS = ("none", "balanced")


@dataclass(frozen=True)
class FitSettings:
    """What every fit of one dataset, label and model shares."""

    label: LabelSpec
    covariates: Sequence[str]
    preprocessing: Preprocessing
    id_column: str
    class_weight: str = "none"  # "balanced": every class weighs the same in training (see balanced_resample)
    search: Mapping[str, Sequence] = field(default_factory=dict)  # hyperparameter -> values (nested CV)
    inner_folds: int = 3
    device: str = "cpu"


def balanced_resample(y: np.ndarray, seed: int) -> np.ndarray:
    """Training-bag indices in which every class has as many bags as the largest: each bag of a rarer class
    repeated, with a seeded draw for the remainder. Random oversampling is the model-agnostic form of
    balanced class weights (in expectation the same weighted likelihood), and works with every model of
    the registry, including those whose losses take no per-bag weights (trees' searches, the GLMM)."""
    classes, counts = np.unique(y, return_counts=True)
    rng = np.random.default_rng(seed)
    target = counts.max()
    parts = []
    for c, n in zip(classes, counts, strict=True):
        members = np.flatnonzero(y == c)
        extra = rng.choice(members, target - n * (target // n), replace=False) if target % n else []
        parts.append(np.concatenate([np.tile(members, target // n), extra]).astype(int))
    return np.sort(np.concatenate(parts), kind="stable")


def _subset(bags, index: np.ndarray, transform=None):
    import torch

    from mixmil_workflow.bags import Bags

    sub = bags.subset(index)
    if transform is None:
        return sub
    return Bags(torch.from_numpy(transform(sub.x.numpy())), sub.offsets)


def save_fit(path: str | Path, model, preprocessing: FittedPreprocessing) -> None:
    """A fit's model at ``path`` (the package's format) and what its preprocessing learned beside it
    (``<stem>.preprocessing.npz``): new bags go through ``FittedPreprocessing.load(...).apply(bags)`` first."""
    path = Path(path)
    model.save(path)
    preprocessing.save(preprocessing_path(path))


def preprocessing_path(model_path: str | Path) -> Path:
    """Where :func:`save_fit` puts a saved model's preprocessing."""
    return Path(model_path).with_suffix(".preprocessing.npz")


def fit_predict(
    spec: Mapping,
    bags,
    y: np.ndarray,
    covariates: np.ndarray | None,
    train: np.ndarray,
    test: np.ndarray,
    settings: FitSettings,
    seed: int,
    n_classes: int | None,
    log: Callable[[str], None] = print,
    instance_scores: bool = False,
    save_to: str | Path | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None, object, float, np.ndarray]:
    """Fit on bags ``train`` (the model saved to ``save_to`` when given), predict bags ``test``. Returns the
    held-out predictions (linear predictor and expected value, or class probabilities), with
    ``instance_scores`` the held-out instances' scores (None for models without them), the held-out bags
    as the model saw them, the training seconds and the training loss per epoch."""
    from mixmil_workflow.models.registry import build, leaves_out_missing_labels

    likelihood = settings.label.likelihood
    y_train = y[train]
    labelled = ~_missing(y_train, likelihood)
    if not labelled.all() and not leaves_out_missing_labels(spec, likelihood):
        raise DatasetError(
            f"label {settings.label.column!r}: {int((~labelled).sum())} training bag(s) have no label, and model type "
            f"{spec['type']!r} without missing_labels: true cannot leave them out; set missing_labels: true (MixMIL, "
            "GLMM; binomial or Bernoulli labels) or drop those bags"
        )
    if settings.class_weight == "balanced":
        order = balanced_resample(y_train[labelled], seed)
        train = train[labelled][order]
        y_train = y_train[labelled][order]
    x_train = bags.subset(train).x.numpy()
    fitted = fit_preprocessing(settings.preprocessing, x_train, seed, log)
    train_bags = _subset(bags, train, fitted.transform)
    test_bags = _subset(bags, test, fitted.transform)
    cov_train = None if covariates is None else covariates[train]
    cov_test = None if covariates is None else covariates[test]
    options = {"n_classes": n_classes} if likelihood == "categorical" else {}
    model = build(spec, seed, settings.device, likelihood=likelihood, n_trials=settings.label.n_trials, **options)
    start = time.perf_counter()
    model.fit(train_bags, y_train, cov_train)
    seconds = time.perf_counter() - start
    if save_to is not None:
        save_fit(save_to, model, fitted)
    if instance_scores:
        prediction, weights = model.predict_with_instance_scores(test_bags, cov_test)
    else:
        prediction, weights = model.predict(test_bags, cov_test), None
    eta = np.asarray(prediction.linear_predictor, dtype=float).reshape(len(test), -1)
    mean = np.asarray(prediction.mean, dtype=float).reshape(len(test), -1)
    if likelihood == "categorical":
        out = {f"prob_{k}": mean[:, k] for k in range(mean.shape[1])}
        out["predicted"] = mean.argmax(1)
    else:
        out = {"linear_predictor": eta[:, 0], "probability" if likelihood == "bernoulli" else "expected": mean[:, 0]}
    return out, weights, test_bags, seconds, model.loss_history


def _missing(y: np.ndarray, likelihood: str) -> np.ndarray:
    return (y < 0) if likelihood == "categorical" else np.isnan(y)


def _prediction_frame(table, test, y, repeat, fold, columns, classes) -> pd.DataFrame:
    frame = pd.DataFrame({"bag": table.iloc[test, 0].to_numpy(), "repeat": repeat, "fold": fold, "y": y[test]})
    if classes is not None:
        frame["y"] = np.where(y[test] < 0, np.nan, y[test])
        probs = {f"prob_{name}": columns[f"prob_{k}"] for k, name in enumerate(classes)}
        return frame.assign(predicted=columns["predicted"], **probs)
    return frame.assign(**columns)


def tune(
    spec: Mapping,
    bags,
    y: np.ndarray,
    covariates: np.ndarray | None,
    train: np.ndarray,
    settings: FitSettings,
    seed: int,
    n_classes: int | None,
    log: Callable[[str], None] = print,
) -> tuple[dict, list[dict]]:
    """Nested CV's inner loop: every combination of ``settings.search`` scored by an inner k-fold over the
    outer training bags ``train`` (pooled inner out-of-fold primary metric); returns the chosen entry and
    one record per combination. Ties go to the first combination in grid order."""
    from sklearn.model_selection import ParameterGrid

    likelihood = settings.label.likelihood
    metric = PRIMARY_METRIC[likelihood]
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    inner = kfold(len(train), settings.inner_folds, seed, stratify_by=strata(pd.Series(y[train]), likelihood))
    classes = None if likelihood != "categorical" else np.arange(n_classes)
    quiet = lambda message: None  # noqa: E731  (inner fits repeat the outer fit's preprocessing lines)
    records, best, best_score = [], None, -np.inf
    for k, combination in enumerate(ParameterGrid({key: list(v) for key, v in settings.search.items()})):
        candidate = {**spec, **combination}
        frames = []
        for inner_fold in range(settings.inner_folds):
            fit_on, held = train[inner != inner_fold], train[inner == inner_fold]
            columns, *_ = fit_predict(candidate, bags, y, covariates, fit_on, held, settings, seed, n_classes, quiet)
            frame = _prediction_frame(
                pd.DataFrame({"bag": held}), np.arange(len(held)), y[held], 0, inner_fold, columns, classes
            )
            frames.append(frame)
        score = score_predictions(pd.concat(frames, ignore_index=True), likelihood)[metric]
        log(f"  search {k}: {json.dumps(combination, sort_keys=True)} -> inner {metric} {score:.4f}")
        records.append(
            {
                "candidate": k,
                "hyperparameters": json.dumps(combination, sort_keys=True),
                "inner_metric": metric,
                "inner_score": score,
            }
        )
        if np.isfinite(score) and sign * score > best_score:
            best, best_score = k, sign * score
    best = 0 if best is None else best
    for record in records:
        record["chosen"] = record["candidate"] == best
    chosen = {**spec, **json.loads(records[best]["hyperparameters"])}
    return chosen, records


def fit_folds(
    spec: Mapping,
    bags,
    table: pd.DataFrame,
    settings: FitSettings,
    folds: Sequence[tuple[int, int]],
    seeds: Sequence[int],
    log: Callable[[str], None] = print,
    save_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], pd.DataFrame, pd.DataFrame]:
    """Every (repeat, fold) of ``folds`` with its seed: held-out predictions (the out-of-fold file's rows),
    the held-out instances' scores (``bags``, ``repeats``, ``offsets``, ``weights``), timings and the
    nested search's records (empty without a search). With ``save_dir``, each fit's model goes to
    ``repeat<r>_fold<f>.pt`` there and its preprocessing to ``repeat<r>_fold<f>.preprocessing.npz``."""
    label = settings.label
    ordered = table[[settings.id_column]].reset_index(drop=True)
    y, classes = prepare_label_column(table[label.column], label, "the prepared bag table", allow_missing=True)
    n_classes = None if classes is None else len(classes)
    covariates = table[list(settings.covariates)].to_numpy(float) if settings.covariates else None
    predictions, timings, searches = [], [], []
    record = {"bags": [], "repeats": [], "sizes": [], "weights": [], "histories": []}
    for (repeat, fold), seed in zip(folds, seeds, strict=True):
        assignment = table[fold_column(repeat)].to_numpy()
        test, train = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
        if len(test) == 0 or len(train) < 2:
            raise DatasetError(f"repeat {repeat}, fold {fold}: {len(test)} held-out and {len(train)} training bags")
        chosen = spec
        if settings.search:
            log(f"repeat {repeat}, fold {fold}: nested search over {dict(settings.search)}")
            chosen, records = tune(spec, bags, y, covariates, train, settings, seed, n_classes, log)
            searches += [{"repeat": repeat, "fold": fold, **r} for r in records]
        columns, weights, test_bags, seconds, history = fit_predict(
            chosen, bags, y, covariates, train, test, settings, seed, n_classes, log, instance_scores=True,
            save_to=None if save_dir is None else Path(save_dir) / f"repeat{repeat}_fold{fold}.pt",
        )  # fmt: skip
        predictions.append(_prediction_frame(ordered, test, y, repeat, fold, columns, classes))
        timings.append({"repeat": repeat, "fold": fold, "train_seconds": seconds})
        log(f"repeat {repeat}, fold {fold}: trained on {len(train)} bags in {seconds:.1f} s, predicted {len(test)}")
        if weights is not None:
            record["weights"].append(np.asarray(weights, dtype=np.float32).reshape(test_bags.n_instances, -1))
        record["bags"].append(ordered.iloc[test, 0].to_numpy().astype(str))
        record["repeats"].append(np.full(len(test), repeat))
        record["sizes"].append(test_bags.sizes.numpy())
        record["histories"].append(np.asarray(history, dtype=float))
    sizes = np.concatenate(record["sizes"])
    instance = {
        "bags": np.concatenate(record["bags"]),
        "repeats": np.concatenate(record["repeats"]),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]),
        "weights": np.concatenate(record["weights"]) if record["weights"] else np.zeros((0, 1), np.float32),
        # every fit's training loss per epoch, one after the other: fit k is loss_history[offsets[k]:offsets[k+1]]
        "loss_history": np.concatenate(record["histories"]),
        "loss_history_offsets": np.concatenate([[0], np.cumsum([len(h) for h in record["histories"]])]),
    }
    search_columns = ["repeat", "fold", "candidate", "hyperparameters", "inner_metric", "inner_score", "chosen"]
    return (
        pd.concat(predictions, ignore_index=True),
        instance,
        pd.DataFrame(timings),
        pd.DataFrame(searches, columns=search_columns),
    )
