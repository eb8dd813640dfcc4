"""Fig. E.3: which cells MixMIL weighs for the genetic labels it predicts best.

For each shown label: the top ``fraction`` of every donor's cells by MixMIL's attention weight (the
held-out fold's model, so no donor is weighed by a model that saw it), their enrichment per cell type
(odds ratio against all other cells, Woolf 95 % interval, Fisher-type P from statsmodels), and a GLMM
fitted with stacked cross-validation on the donors' mean embedding of only their top cells against only
their bottom cells: if MixMIL found the cells that carry the genetic signal, the top cells predict the
dosage and the bottom cells do not. Ranking within a donor, because attention weights are a softmax
within each bag (a global ranking would favour the cells of small donors).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def choose_examples(matrix: pd.DataFrame, reference: str, baselines: Sequence[str], n_examples: int) -> list[str]:
    """The labels with the largest gain of ``reference`` over the best baseline (over zero without
    baselines), best first; labels where the reference has no positive Spearman are not shown."""
    best_other = matrix[list(baselines)].max(axis=1) if baselines else pd.Series(0.0, index=matrix.index)
    gain = (matrix[reference] - best_other)[matrix[reference] > 0]
    return list(gain.sort_values(ascending=False, kind="stable").index[:n_examples])


def weights_by_label(weight_files: Sequence[str], table: pd.DataFrame, n_instances: int) -> pd.DataFrame:
    """(instances, labels) attention weights in prepared instance order, each donor's from the fold that
    held it out. ``weight_files``: the reference model's per-fold ``.npz`` (bags, offsets, weights, labels)."""
    first_row = dict(
        zip(table["donor_id"].astype(str), np.concatenate([[0], np.cumsum(table["n_instances"])[:-1]]), strict=True)
    )
    out, labels = None, None
    for path in weight_files:
        with np.load(path) as f:
            bags, offsets, weights, names = f["bags"], f["offsets"], f["weights"], list(f["labels"])
        if weights.size == 0:
            raise ValueError(f"{path}: the model gave no instance weights")
        if out is None:
            labels, out = names, np.full((n_instances, len(names)), np.nan, dtype=np.float32)
        elif names != labels:
            raise ValueError(f"{path}: outputs {names[:3]}... differ from the other folds' {labels[:3]}...")
        for k, bag in enumerate(bags):
            start = first_row[str(bag)]
            out[start : start + offsets[k + 1] - offsets[k]] = weights[offsets[k] : offsets[k + 1]]
    if out is None or np.isnan(out).any():
        raise ValueError("instance weights do not cover every donor: a fold's weights are missing")
    return pd.DataFrame(out, columns=labels)


def ranked_cells(weights: np.ndarray, sizes: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of each bag's top and bottom ``fraction`` of instances by weight (at least one
    instance each; ties broken by position, so the result is deterministic)."""
    top = np.zeros(len(weights), dtype=bool)
    bottom = np.zeros(len(weights), dtype=bool)
    start = 0
    for size in sizes:
        k = max(1, int(np.ceil(fraction * size)))
        order = np.argsort(-weights[start : start + size], kind="stable")
        top[start + order[:k]] = True
        bottom[start + order[::-1][:k]] = True
        start += size
    return top, bottom


def odds_ratios(top: np.ndarray, cell_group: np.ndarray) -> pd.DataFrame:
    """Per cell type: top cells in and outside it, odds ratio of being a top cell, Woolf 95 % CI, P."""
    from statsmodels.stats.contingency_tables import Table2x2

    rows = []
    for group in sorted(np.unique(cell_group)):
        inside = cell_group == group
        counts = np.array(
            [[np.sum(top & inside), np.sum(~top & inside)], [np.sum(top & ~inside), np.sum(~top & ~inside)]], float
        )
        # 0.5 added to every cell only when one is empty (Haldane), so the ratio stays finite.
        table = Table2x2(counts + 0.5 if (counts == 0).any() else counts)
        low, high = table.oddsratio_confint()
        rows.append(
            {
                "cell_type": group,
                "cells": int(inside.sum()),
                "top_cells": int(counts[0, 0]),
                "top_share": counts[0, 0] / max(inside.sum(), 1),
                "odds_ratio": table.oddsratio,
                "ci_low": low,
                "ci_high": high,
                "p_value": table.oddsratio_pvalue(),
            }
        )
    return pd.DataFrame(rows)


def subset_means(x: np.ndarray, sizes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per bag, the mean of its instances selected by ``mask`` (every bag must have one)."""
    bag = np.repeat(np.arange(len(sizes)), sizes)
    counts = np.bincount(bag[mask], minlength=len(sizes))
    if (counts == 0).any():
        raise ValueError("a bag has no selected instance")
    sums = np.zeros((len(sizes), x.shape[1]))
    np.add.at(sums, bag[mask], x[mask])
    return sums / counts[:, None]


def stacked_glmm(means: np.ndarray, y: np.ndarray, covariates: np.ndarray, folds: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold linear predictor of a Binomial(2) GLMM on bag features (the paper's label model)."""
    from mixmil_workflow.models.glmm import GLMM

    prediction = np.empty(len(y))
    for fold in np.unique(folds):
        test = folds == fold
        model = GLMM("binomial", n_trials=2, seed=seed).fit(means[~test], y[~test, None], covariates[~test])
        prediction[test] = model.linear_predictor(means[test], covariates[test])[:, 0]
    return prediction


def top_bottom_predictions(
    x: np.ndarray,
    sizes: np.ndarray,
    weights: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray,
    folds: np.ndarray,
    fraction: float,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """GLMM out-of-fold predictions of one label from each donor's top and from its bottom cells.
    Returns one row per donor (``y``, ``top``, ``bottom``) and the top-cell mask."""
    top, bottom = ranked_cells(weights, sizes, fraction)
    out = pd.DataFrame(
        {
            "y": y,
            "top": stacked_glmm(subset_means(x, sizes, top), y, covariates, folds, seed),
            "bottom": stacked_glmm(subset_means(x, sizes, bottom), y, covariates, folds, seed),
        }
    )
    return out, top


ODDS_COLUMNS = ["label", "cell_type", "cells", "top_cells", "top_share", "odds_ratio", "ci_low", "ci_high", "p_value"]
PREDICTION_COLUMNS = ["label", "donor_id", "y", "top", "bottom"]


def example_tables(
    examples: Sequence[str],
    table: pd.DataFrame,
    x: np.ndarray,
    weights: pd.DataFrame,
    cell_group: np.ndarray,
    covariates: np.ndarray,
    fraction: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """For each shown label: odds ratios of its top cells per cell type, the GLMM's top/bottom-cell
    predictions per donor, and its top-cell mask. ``table``: the prepared bag table (donor order)."""
    sizes, folds = table["n_instances"].to_numpy(), table["fold"].to_numpy()
    odds, predictions, masks = [], [], {}
    for label in examples:
        y = table[label].to_numpy(float)
        pred, masks[label] = top_bottom_predictions(
            x, sizes, weights[label].to_numpy(), y, covariates, folds, fraction, seed
        )
        predictions.append(pred.assign(label=label, donor_id=table["donor_id"].to_numpy()))
        odds.append(odds_ratios(masks[label], cell_group).assign(label=label))
    odds = pd.concat(odds, ignore_index=True)[ODDS_COLUMNS] if odds else pd.DataFrame(columns=ODDS_COLUMNS)
    predictions = (
        pd.concat(predictions, ignore_index=True)[PREDICTION_COLUMNS]
        if predictions
        else pd.DataFrame(columns=PREDICTION_COLUMNS)
    )
    return odds, predictions, masks


def odds_markdown(odds: pd.DataFrame) -> pd.DataFrame:
    """The odds-ratio table for reading: 'OR (low-high)' and P to 2 significant digits."""
    return odds.assign(
        odds_ratio=[
            f"{o:.2f} ({lo:.2f}-{hi:.2f})"
            for o, lo, hi in zip(odds["odds_ratio"], odds["ci_low"], odds["ci_high"], strict=True)
        ],
        p_value=[f"{p:.2g}" for p in odds["p_value"]],
    ).drop(columns=["ci_low", "ci_high"])


def spearman_of(a, b) -> float:
    rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def figure_e3(
    examples: Sequence[str],
    cell_map: pd.DataFrame,
    top_masks: dict[str, np.ndarray],
    odds: pd.DataFrame,
    predictions: pd.DataFrame,
    reference_name: str,
    fraction: float,
    path,
) -> None:
    """One row per shown label: UMAP by cell type; UMAP with the top cells; GLMM predictions from the
    top cells and from the bottom cells against the observed allele count (box plots)."""
    import matplotlib.pyplot as plt

    from mixmil_workflow.studies.simulation_plots import save_figure

    shown = cell_map[cell_map["umap1"].notna()]
    groups = sorted(cell_map["cell_group"].astype(str).unique())
    colours = {g: f"C{k}" for k, g in enumerate(groups)}
    n = max(len(examples), 1)
    fig, axes = plt.subplots(n, 4, figsize=(15, 3.4 * n), squeeze=False)
    percent = f"{100 * fraction:g} %"
    for row, label in zip(axes, examples, strict=False):
        ax = row[0]
        for group in groups:
            part = shown[shown["cell_group"].astype(str) == group]
            ax.scatter(part["umap1"], part["umap2"], s=2, color=colours[group], label=group, rasterized=True)
        ax.legend(markerscale=4, fontsize=7, frameon=False)
        ax.set_title(f"{label}: cell types", fontsize=9)
        ax = row[1]
        top = top_masks[label][shown.index.to_numpy()]
        ax.scatter(shown["umap1"][~top], shown["umap2"][~top], s=2, color="0.85", rasterized=True)
        ax.scatter(shown["umap1"][top], shown["umap2"][top], s=3, color="#c0392b", rasterized=True)
        ratios = odds[odds["label"] == label]
        text = "\n".join(f"OR {r.cell_type}: {r.odds_ratio:.2f}" for r in ratios.itertuples())
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=7)
        ax.set_title(f"top {percent} cells by {reference_name} weight", fontsize=9)
        for ax in row[:2]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("UMAP 1", fontsize=8)
            ax.set_ylabel("UMAP 2", fontsize=8)
        part = predictions[predictions["label"] == label]
        for ax, which in zip(row[2:], ("top", "bottom"), strict=True):
            values = [part.loc[part["y"] == k, which].to_numpy() for k in (0, 1, 2)]
            ax.boxplot(values, tick_labels=["0", "1", "2"], showfliers=False)
            ax.set_xlabel("observed allele count", fontsize=8)
            ax.set_ylabel("GLMM prediction (out of fold)", fontsize=8)
            rho = spearman_of(part[which], part["y"])
            ax.set_title(rf"GLMM on {which} {percent} cells: $\rho$ = {rho:.2f}", fontsize=9)
    if not examples:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0, 0.5, f"no label with a positive {reference_name} Spearman", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
