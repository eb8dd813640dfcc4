"""The MoMIL comparison on the sparse multi-task simulation: single-task MIL per primary task, MoMIL on
all tasks, MoMIL with task selection (performance threshold, then influence), with label imputation,
and with both; MixMIL's multi-output model (one Bernoulli output per task, missing labels masked from the
ELBO) on all tasks; scored by the mean test ROC-AUC over the primary tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixmil_workflow.simulate.multitask import MultitaskData

if TYPE_CHECKING:  # torch stays out of the summary job's env (report.yaml)
    from mixmil_workflow.bags import Bags

VARIANTS = ("single_task", "momil", "momil_selection", "momil_imputation", "momil_selection_imputation", "mixmil")


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    keep = ~np.isnan(labels)
    if len(np.unique(labels[keep])) < 2:
        return float("nan")
    return float(roc_auc_score(labels[keep], scores[keep]))


def _momil(spec: Mapping, seed: int, selection_tasks: Sequence[int] | None = None):
    """MoMIL from the study's model entry; under the paper's schedule the epoch is selected by the mean
    validation AUC of ``selection_tasks`` (the primary tasks' columns), default every task."""
    from mixmil_workflow.models.momil import MoMIL

    options = {k: v for k, v in spec.items() if k != "type"}
    if selection_tasks is not None:
        options["selection_tasks"] = [int(t) for t in selection_tasks]
    return MoMIL(seed=seed, **options)


def _mixmil(mixmil_spec: Mapping, spec: Mapping, seed: int):
    """MixMIL's multi-output model for binary tasks: one Bernoulli output per task, NaN labels masked."""
    from mixmil_workflow.models.mixmil import MixMIL

    options = {"device": spec.get("device", "auto"), "progress": spec.get("progress", False)}
    options |= {k: v for k, v in mixmil_spec.items() if k != "type"}
    return MixMIL(likelihood="bernoulli", n_trials=None, missing_labels=True, seed=seed, **options)


class _Fitted:
    """A fitted model's probabilities (and head embeddings) on every bag."""

    def __init__(self, model, bags: Bags, embeddings: bool = False):
        self.prob = model.predict(bags).mean
        self.embeddings = model.bag_embeddings(bags) if embeddings else None


def _keep(model, save_dir: str | Path | None, name: str):
    """Save a fitted model as ``<save_dir>/<name>.pt`` (config ``save_models.momil``); returns the model."""
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        model.save(Path(save_dir) / f"{name}.pt")
    return model


def single_task_fits(
    data: MultitaskData, bags: Bags, spec: Mapping, seed: int, tasks: Sequence[int], save_dir: str | Path | None = None
) -> dict:
    """One single-task model per task (trained on its observed training labels); probabilities and
    head embeddings on every bag. With ``save_dir`` each model is kept as ``single_task_<task>.pt``."""
    train = np.flatnonzero(data.split == "train")
    fits = {}
    for t in tasks:
        model = _momil(spec, seed + 1000 * (t + 1)).fit(bags.subset(train), data.observed[train, t : t + 1])
        fits[t] = _Fitted(_keep(model, save_dir, f"single_task_{data.task_names[t]}"), bags, embeddings=True)
    return fits


def select_tasks(
    data: MultitaskData,
    single: Mapping[int, _Fitted],
    th_perf: float,
    th_inf: float,
    seed: int,
    similarity: pd.DataFrame | None = None,
    th_sim: float = 0.7,
) -> tuple[list[int], pd.DataFrame]:
    """Section 2.2, hierarchically: with a task-similarity table, secondary tasks scoring >= ``th_sim``
    with a primary task (biological similarity; without a table every task passes); of those, the ones
    whose single-task validation AUC reaches ``th_perf``; of those, the ones with influence >= ``th_inf``
    x the primary task's self-influence on at least one primary task. Returns the selected secondary
    tasks and a table of every criterion."""
    from mixmil_workflow.models.momil_tasks import influence_score, similarity_selection

    train, val = data.split == "train", data.split == "validation"
    names = data.task_names
    secondary = [t for t in range(data.n_tasks) if not data.primary[t]]
    if similarity is None:
        similar = set(secondary)
    else:
        primaries = [names[t] for t in np.flatnonzero(data.primary)]
        chosen = similarity_selection(similarity, primaries, [names[t] for t in secondary], th_sim)
        similar = {names.index(n) for n in chosen}
    rows, selected = [], set()
    for t in secondary:
        auc = _auc(data.observed[val, t], single[t].prob[val, 0])
        row = {
            "task": t,
            "program": int(data.program[t]),
            "biologically_similar": t in similar,
            "validation_auc": auc,
            "passes_performance": auc >= th_perf,
        }
        for primary in np.flatnonzero(data.primary):
            emb, own = single[t].embeddings[:, 0], single[primary].embeddings[:, 0]
            y = data.observed[:, primary]
            score = influence_score(emb[train], y[train], emb[val], y[val], seed)
            self_score = influence_score(own[train], y[train], own[val], y[val], seed)
            row[f"influence_on_{primary}"] = score
            if t in similar and row["passes_performance"] and np.isfinite(score) and score >= th_inf * self_score:
                selected.add(t)
        row["selected"] = t in selected
        rows.append(row)
    return sorted(selected), pd.DataFrame(rows)


def _impute(data: MultitaskData, fitted: _Fitted, tasks: Sequence[int], p: float, alpha: float) -> np.ndarray:
    from mixmil_workflow.models.momil_tasks import imputation_thresholds, impute_labels

    val, train = data.split == "validation", data.split == "train"
    secondary = ~data.primary[list(tasks)]
    pos, neg = imputation_thresholds(fitted.prob[val], data.observed[val][:, tasks], secondary, p, alpha)
    labels = data.observed[:, tasks].copy()
    imputed, _ = impute_labels(labels[train], fitted.prob[train], pos, neg)
    labels[train] = imputed
    return labels


def run_comparison(
    data: MultitaskData,
    spec: Mapping,
    seed: int,
    variants: Sequence[str] = VARIANTS,
    th_perf: float = 0.7,
    th_inf: float = 0.9,
    p: float = 0.9,
    alpha: float = 0.05,
    imputation_rounds: int = 1,
    mixmil_spec: Mapping | None = None,
    similarity: pd.DataFrame | None = None,
    th_sim: float = 0.7,
    save_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per variant and primary task: test ROC-AUC (against the full labels), and the selection table.
    ``spec`` configures the MoMIL / single-task models, ``mixmil_spec`` the MixMIL variant (MixMILConfig
    fields; device and progress are taken from ``spec``). ``similarity``: an optional task-similarity
    matrix (:func:`mixmil_workflow.models.momil_tasks.read_task_similarity`) for the selection's first criterion.
    With ``save_dir`` every fitted model is kept there: ``<variant>.pt`` (the last imputation round's for the
    imputation variants) and ``single_task_<task>.pt``."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown MoMIL variants {unknown}; known: {VARIANTS}")
    from mixmil_workflow.bags import Bags

    bags = Bags.from_dense(data.x)
    train, test = np.flatnonzero(data.split == "train"), data.split == "test"
    primaries = list(np.flatnonzero(data.primary))
    rows = []

    def record(variant: str, prob: np.ndarray, tasks: Sequence[int], n_imputed: int = 0):
        for t in (t for t in primaries if t in tasks):
            column = list(tasks).index(t)
            auc = _auc(data.labels[test, t], prob[test, column])
            rows.append({"variant": variant, "task": t, "test_auc": auc, "n_tasks": len(tasks), "n_imputed": n_imputed})

    # single-task models: for the single-task variant (primary tasks) and for selection (every task)
    selecting = any("selection" in v for v in variants)
    single_tasks = list(range(data.n_tasks)) if selecting else primaries if "single_task" in variants else []
    single = single_task_fits(data, bags, spec, seed, single_tasks, save_dir)
    if "single_task" in variants:
        for t in primaries:
            record("single_task", single[t].prob, [t])
    selection = pd.DataFrame()
    tasks_all = list(range(data.n_tasks))
    tasks_selected = tasks_all
    if selecting:
        chosen, selection = select_tasks(data, single, th_perf, th_inf, seed, similarity, th_sim)
        tasks_selected = sorted(primaries + chosen)
    if "mixmil" in variants:
        model = _mixmil(mixmil_spec or {}, spec, seed).fit(bags.subset(train), data.observed[train])
        _keep(model, save_dir, "mixmil")
        record("mixmil", model.predict(bags).mean, tasks_all)
    for variant in variants:
        if variant in ("single_task", "mixmil"):
            continue
        tasks = tasks_selected if "selection" in variant else tasks_all
        labels = data.observed[:, tasks]
        primary_columns = [list(tasks).index(t) for t in primaries if t in tasks]
        model = _momil(spec, seed, primary_columns).fit(bags.subset(train), labels[train])
        fitted = _Fitted(model, bags)
        n_imputed = 0
        if "imputation" in variant:
            for _ in range(imputation_rounds):
                labels = _impute(data, fitted, tasks, p, alpha)
                n_imputed = int(np.isnan(data.observed[train][:, tasks]).sum() - np.isnan(labels[train]).sum())
                model = _momil(spec, seed, primary_columns).fit(bags.subset(train), labels[train])
                fitted = _Fitted(model, bags)
        _keep(model, save_dir, variant)
        record(variant, fitted.prob, tasks, n_imputed)
    return pd.DataFrame(rows), selection


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean test AUC over primary tasks per variant (and its standard error over tasks x repeats)."""
    group = results.groupby("variant", sort=False)["test_auc"]
    out = pd.DataFrame({"mean_auc": group.mean(), "se": group.std(ddof=1) / np.sqrt(group.count())})
    order = [v for v in VARIANTS if v in out.index] + [v for v in out.index if v not in VARIANTS]
    return out.loc[order].reset_index()
