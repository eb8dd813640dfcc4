"""Genetics results (paper Section 4.3): out-of-fold Spearman per label and model (5-fold stacked CV),
Fig. 3 (MixMIL against each MIL baseline, binomial test of wins), Table E.2 (mean and sd over labels,
paired t-tests) and, on the demo, the recovery of the planted variants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest, spearmanr, ttest_rel

from mixmil_workflow.metrics import format_mean_se


def display_name(model: str, kind: str) -> str:
    """The paper's name of a model type; the config name when a type is used more than once."""
    from mixmil_workflow.studies.simulation_plots import spec_style

    label = spec_style({"type": kind}, kind)["label"]
    return label if model == kind else f"{label} ({model})"


def stacked_spearman(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per label and model: Spearman of the concatenated out-of-fold scores with the dosages.
    A model that predicts a constant gets 0 (no ranking) instead of NaN, so it counts as a loss."""
    rows = []
    for (label, model), group in predictions.groupby(["label", "model"], sort=False):
        if group["bag"].duplicated().any():
            raise ValueError(f"{label}, {model}: a bag is predicted by more than one fold")
        if group["score"].nunique() < 2 or group["y"].nunique() < 2:
            rho, p_value = 0.0, 1.0
        else:
            rho, p_value = spearmanr(group["score"], group["y"])
        rows.append(
            {
                "label": label,
                "model": model,
                "spearman": float(rho) if np.isfinite(rho) else 0.0,
                "p_value": float(p_value) if np.isfinite(p_value) else 1.0,
                "n_bags": len(group),
            }
        )
    return pd.DataFrame(rows)


def spearman_matrix(spearman: pd.DataFrame, labels: Sequence[str], models: Sequence[str]) -> pd.DataFrame:
    """Labels x models Spearman, in the given orders."""
    wide = spearman.pivot(index="label", columns="model", values="spearman")
    missing = [m for m in models if m not in wide.columns] + [lab for lab in labels if lab not in wide.index]
    if missing:
        raise ValueError(f"no out-of-fold predictions for {missing}")
    return wide.loc[list(labels), list(models)]


def wins(matrix: pd.DataFrame, reference: str, baselines: Sequence[str]) -> pd.DataFrame:
    """Fig. 3's counts: labels on which ``reference`` has the higher Spearman, and the one-sided binomial
    test against a 50/50 chance (the paper's P < 2e-7 for 27 of 28 is the one-sided value)."""
    rows = []
    for baseline in baselines:
        better = int((matrix[reference] > matrix[baseline]).sum())
        n = len(matrix)
        rows.append(
            {
                "baseline": baseline,
                "reference_better": better,
                "n_labels": n,
                "binomial_p": binomtest(better, n, 0.5, alternative="greater").pvalue if n else np.nan,
            }
        )
    return pd.DataFrame(rows)


def table_e2(matrix: pd.DataFrame, reference: str, names: Mapping[str, str]) -> pd.DataFrame:
    """Mean and sd of Spearman over labels per model, and the one-sided paired t-test of the reference's
    improvement over each model (NaN with fewer than two labels)."""
    rows = []
    for model in matrix.columns:
        values = matrix[model].to_numpy()
        p_value = np.nan
        if model != reference and len(values) >= 2:
            p_value = ttest_rel(matrix[reference].to_numpy(), values, alternative="greater").pvalue
        rows.append(
            {
                "method": names[model],
                "model": model,
                "spearman_mean": float(values.mean()),
                "spearman_sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                "improvement_ttest_p": p_value,
            }
        )
    return pd.DataFrame(rows)


def table_e2_markdown(table: pd.DataFrame, reference_name: str, n_labels: int) -> pd.DataFrame:
    """Table E.2's layout: 'mean ± sd' and the t-test P-value (3 significant digits)."""
    return pd.DataFrame(
        {
            "Method": table["method"],
            f"Prediction performance (Spearman, {n_labels} labels)": [
                format_mean_se(m, s, 2) for m, s in zip(table["spearman_mean"], table["spearman_sd"], strict=True)
            ],
            f"{reference_name} improvement (paired t-test P, one-sided)": [
                "-" if not np.isfinite(p) else f"{p:.3g}" for p in table["improvement_ttest_p"]
            ],
        }
    )


def figure_3(matrix: pd.DataFrame, reference: str, counts: pd.DataFrame, names: Mapping[str, str], path) -> None:
    """One scatter per baseline: baseline Spearman (x) against the reference's (y); labels on which the
    reference is better in red; the count and binomial P in the title."""
    import matplotlib.pyplot as plt

    from mixmil_workflow.studies.simulation_plots import save_figure

    n = len(counts)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.3 * max(n, 1), 3.4), squeeze=False)
    low = min(0.0, float(matrix.min().min())) - 0.05
    high = max(0.1, float(matrix.max().max())) + 0.05
    for ax, row in zip(axes[0], counts.itertuples(), strict=False):
        x, y = matrix[row.baseline], matrix[reference]
        better = y > x
        ax.scatter(x[~better], y[~better], s=22, color="0.45", label=f"{names[row.baseline]} better or tied")
        ax.scatter(x[better], y[better], s=22, color="#c0392b", label=f"{names[reference]} better")
        ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls="--")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_xlabel(rf"{names[row.baseline]} $\rho$")
        ax.set_ylabel(rf"{names[reference]} $\rho$")
        ax.set_title(
            f"{row.reference_better}/{row.n_labels} labels, P = {row.binomial_p:.2g}\n(one-sided binomial test)",
            fontsize=8.5,
        )
        ax.grid(alpha=0.3)
    if n == 0:
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, "no baselines in genetics.models", ha="center", va="center")
    fig.suptitle(f"Genetic labels: {names[reference]} against each MIL baseline (out-of-fold Spearman)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def planted_recovery(spearman: pd.DataFrame, variants: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Demo check: each trained variant with its simulated role (``planted`` also for a proxy in LD with a
    planted variant, ``not_planted`` otherwise) and each model's out-of-fold Spearman."""
    truth = truth.set_index("rsid")
    role = truth["role"].astype(str)
    lead = truth["lead"].astype(str) if "lead" in truth.columns else pd.Series("", index=truth.index)

    def simulated(rsid: str) -> str:
        if rsid not in role.index:
            raise ValueError(f"variant {rsid} is not in the demo's truth table")
        if role[rsid] == "planted" or (role[rsid] == "proxy" and role.get(lead[rsid], "") == "planted"):
            return "planted"
        return "not_planted"

    wide = spearman.pivot(index="label", columns="model", values="spearman")
    out = variants.assign(simulated=[simulated(v) for v in variants["rsid"]])
    return out.join(wide, on="rsid")
