"""A bring-your-own-bags dataset's results: the comparison (mean ± s.e. per label and model), metrics per
fold, the instance scores as a table and written into an ``.h5ad`` copy of the instances, and a figure."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.metrics import format_mean_se
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.metrics import METRICS, PRIMARY_METRIC, fold_metrics, summarise

# The out-of-fold file's columns, written as its header lines (and in config/README.md).
PREDICTION_COLUMNS = {
    "bag": "bag id",
    "repeat, fold": "the cross-validation repeat and the fold that held the bag out (split: fold 0 = test)",
    "label, model, type": "label column, model name and model type",
    "y": "the label as the model saw it (categorical: class index into the prob_<class> columns; empty: missing)",
    "linear_predictor": "the model's logit / linear predictor (not categorical)",
    "probability": "Bernoulli: predicted probability of 1 (MixMIL: averaged over posterior samples)",
    "expected": "binomial / Gaussian: expected value of the label",
    "predicted, prob_<class>": "categorical: predicted class index and the probability of each class",
}


def concat_fit_tables(
    runs: Iterable[tuple[str, str, str]], paths, types: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The per-job tables of ``runs`` ((label, model, unit), one path each) in one frame with ``label`` and
    ``model`` columns (and ``type`` when ``types`` is given); empty tables (no nested search) are skipped."""
    frames = []
    for (label, model, _unit), path in zip(runs, paths, strict=True):
        frame = pd.read_csv(path, sep="\t", dtype={"bag": str}, comment="#").assign(label=label, model=model)
        frames.append(frame if types is None else frame.assign(type=types[model]))
    return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)


def collect(runs: Iterable[tuple[str, str, str]], paths, types: Mapping[str, str]) -> pd.DataFrame:
    """Every held-out prediction in one frame, ordered by label, model, repeat, fold and bag (the same
    however the fits were split into jobs)."""
    out = concat_fit_tables(runs, paths, types)
    first = ["bag", "repeat", "fold", "label", "model", "type", "y"]
    out = out[first + [c for c in out.columns if c not in first]]
    labels = pd.Categorical(out["label"], categories=list(dict.fromkeys(out["label"])), ordered=True)
    models = pd.Categorical(out["model"], categories=list(dict.fromkeys(out["model"])), ordered=True)
    keys = out.assign(_label=labels, _model=models)
    order = keys.sort_values(["_label", "_model", "repeat", "fold", "bag"], kind="stable").index
    return out.loc[order].reset_index(drop=True)


def comparison(predictions: pd.DataFrame, labels: Mapping[str, LabelSpec]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(comparison: one row per label and model, every metric with its standard error; per-fold metrics)."""
    rows, folds = [], []
    for (label, model, kind), group in predictions.groupby(["label", "model", "type"], sort=False):
        likelihood = labels[label].likelihood
        frame = group.dropna(axis=1, how="all")
        per_fold = fold_metrics(frame, likelihood)
        folds.append(per_fold.assign(label=label, model=model, type=kind))
        summary = summarise(per_fold, likelihood)
        metric = PRIMARY_METRIC[likelihood]
        rows.append(
            {
                "label": label,
                "likelihood": likelihood,
                "model": model,
                "type": kind,
                "n_bags": int(group.loc[group["repeat"] == group["repeat"].iloc[0], "y"].notna().sum()),
            }
            | {"metric": metric, "value": summary[metric], "se": summary[f"{metric}_se"]}
            | summary
        )
    per_fold = pd.concat(folds, ignore_index=True)
    per_fold = per_fold[
        ["label", "model", "type", *[c for c in per_fold.columns if c not in ("label", "model", "type")]]
    ]
    return pd.DataFrame(rows), per_fold


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison as Markdown: per label, every metric of its likelihood as mean ± s.e."""
    return "\n".join(
        f"### {heading}\n\n{shown.to_markdown(index=False)}\n" for heading, shown in _comparison_parts(table)
    )


def comparison_html(table: pd.DataFrame, dataset: str, provenance_lines: list[str] | None = None) -> str:
    """The same as the report's inline page, each label's table sortable."""
    from mixmil_workflow.html_tables import page, table_html

    sections = []
    for heading, shown in _comparison_parts(table):
        sections += [f"<h2>{html.escape(heading)}</h2>", table_html(shown)]
    return page(f"Your dataset {dataset}: models compared", sections, provenance_lines)


def _comparison_parts(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    parts = []
    for label, rows in table.groupby("label", sort=False):
        likelihood = rows["likelihood"].iloc[0]
        shown = pd.DataFrame({"model": rows["model"], "type": rows["type"], "n_bags": rows["n_bags"]})
        for metric in METRICS[likelihood]:
            shown[metric] = [
                format_mean_se(v, se, missing="n/a") for v, se in zip(rows[metric], rows[f"{metric}_se"], strict=True)
            ]
        first = rows.iloc[0]
        cv = f"{first['n_repeats']} repeat(s) x {first['n_folds']} fold(s); ± s.e. over {first['se_over']}"
        parts.append((f"{label} ({likelihood}; {cv})", shown))
    return parts


def instance_weight_table(
    weight_files: Iterable[tuple[str, str, str | Path]], table: pd.DataFrame, names: pd.Series, id_column: str
) -> pd.DataFrame:
    """One row per instance (``obs_name``, ``bag``) and one column per label and model (``label:model``;
    ``label:model:k`` for each of several outputs): the score given by the fit that held the bag out,
    averaged over repeats, so no instance is scored by a model that saw its bag."""
    first_row = dict(zip(table[id_column], np.concatenate([[0], np.cumsum(table["n_instances"])[:-1]]), strict=True))
    out = pd.DataFrame(
        {"obs_name": names.to_numpy(), "bag": np.repeat(table[id_column].to_numpy(), table["n_instances"].to_numpy())}
    )
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for label, model, path in weight_files:
        with np.load(path) as f:
            if f["weights"].size == 0:
                continue
            bag_ids, offsets, weights = f["bags"], f["offsets"], f["weights"]
        keys = (
            [f"{label}:{model}"] if weights.shape[1] == 1 else [f"{label}:{model}:{k}" for k in range(weights.shape[1])]
        )
        for key in keys:
            sums.setdefault(key, np.zeros(len(out)))
            counts.setdefault(key, np.zeros(len(out)))
        for k, bag in enumerate(bag_ids):
            rows = slice(first_row[bag], first_row[bag] + offsets[k + 1] - offsets[k])
            for j, key in enumerate(keys):
                sums[key][rows] += weights[offsets[k] : offsets[k + 1], j]
                counts[key][rows] += 1
    columns = {
        key: np.where(counts[key] > 0, sums[key] / np.maximum(counts[key], 1), np.nan).astype(np.float32)
        for key in sums
    }
    return pd.concat([out, pd.DataFrame(columns)], axis=1)


def write_weighted_h5ad(instances: str | Path, weights: pd.DataFrame, path: str | Path) -> None:
    """A copy of the user's AnnData with every ``label:model`` score as an ``obs`` column (NaN for instances
    of bags no fit held out), as single-cell tools keep per-cell results."""
    import anndata

    from mixmil_workflow.io import atomic_path

    adata = anndata.read_h5ad(instances)
    scores = weights.drop(columns=["bag"]).set_index("obs_name")
    adata.obs = adata.obs.join(scores.reindex(adata.obs_names))
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def comparison_figure(table: pd.DataFrame, dataset: str, path: str | Path) -> None:
    """One panel per label: every model's primary metric, mean ± s.e."""
    import matplotlib.pyplot as plt

    from mixmil_workflow.studies.simulation_plots import save_figure

    labels = list(dict.fromkeys(table["label"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.2), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        rows = table[table["label"] == label]
        ax.bar(
            range(len(rows)),
            rows["value"],
            yerr=rows["se"].fillna(0),
            capsize=3,
            color=[f"C{k}" for k in range(len(rows))],
        )
        ax.set_xticks(range(len(rows)), rows["model"], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{label} ({rows['likelihood'].iloc[0]})", fontsize=9)
        metric = rows["metric"].iloc[0]
        ax.set_ylabel(f"{metric.replace('_', ' ')} (mean ± s.e.)")
        ax.axhline(0.5 if metric.startswith("auc") else 0, color="0.6", lw=0.8, ls=":")
    fig.suptitle(f"{dataset}: held-out performance", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
