"""MoA classification results of the microscopy branch: Table 2 (balanced accuracy, F1 macro, F1 micro;
mean and standard error over the held-out-plate repeats), Table E.3 (F1 per MoA), Table E.4 (the same
metrics for each number of principal components), the top/bottom-weighted cell montages of Fig. 4 / E.4,
and, where the truth is known (the demo), where each model ranks the artefact crops within their wells."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.metrics import format_mean_se
from mixmil_workflow.microscopy.bbbc021 import MicroscopyError

METRICS = {"balanced_accuracy": "Bal. Accuracy", "f1_macro": "F1 Macro", "f1_micro": "F1 Micro"}


def read_predictions(runs: Iterable[tuple[str, int, int, str | Path]]) -> pd.DataFrame:
    """``runs``: (model, principal components, repeat, predictions TSV) -> one long table."""
    frames = [
        pd.read_csv(path, sep="\t", dtype={"bag": str}).assign(model=model, pcs=int(pcs), repeat=int(repeat))
        for model, pcs, repeat, path in runs
    ]
    return pd.concat(frames, ignore_index=True)


def class_names(predictions: pd.DataFrame) -> list[str]:
    return [c.removeprefix("prob_") for c in predictions.columns if c.startswith("prob_")]


def run_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per model, PCs and repeat: the three metrics of Table 2 and the F1 of each MoA."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    classes = class_names(predictions)
    rows = []
    for (model, pcs, repeat), run in predictions.groupby(["model", "pcs", "repeat"], sort=False):
        y, pred = run["y"].to_numpy(int), run["score"].to_numpy(int)
        per_class = f1_score(y, pred, labels=range(len(classes)), average=None, zero_division=0)
        rows.append(
            {"model": model, "pcs": pcs, "repeat": repeat, "n_wells": len(run)}
            | {
                "balanced_accuracy": balanced_accuracy_score(y, pred),
                "f1_macro": f1_score(y, pred, labels=range(len(classes)), average="macro", zero_division=0),
                "f1_micro": f1_score(y, pred, average="micro"),
            }
            | {f"f1:{name}": value for name, value in zip(classes, per_class, strict=True)}
        )
    return pd.DataFrame(rows)


def _mean_se(values: pd.Series) -> tuple[float, float]:
    n = values.notna().sum()
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def summary_table(metrics: pd.DataFrame, columns: Sequence[str], by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Mean and standard error over repeats of ``columns`` per ``by`` group (``<col>_mean``, ``<col>_se``)."""
    rows = []
    for key, group in metrics.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True)) | {"n_repeats": len(group)}
        for column in columns:
            row[f"{column}_mean"], row[f"{column}_se"] = _mean_se(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


def table2(metrics: pd.DataFrame, pcs: int) -> pd.DataFrame:
    chosen = metrics[metrics["pcs"] == pcs]
    if chosen.empty:
        raise MicroscopyError(f"no run with {pcs} principal components (microscopy.pca_components)")
    return summary_table(chosen, list(METRICS))


def table_e3(metrics: pd.DataFrame, pcs: int) -> pd.DataFrame:
    """F1 per MoA and model (long: ``moa, model, f1_mean, f1_se``)."""
    chosen = metrics[metrics["pcs"] == pcs]
    columns = [c for c in chosen.columns if c.startswith("f1:")]
    wide = summary_table(chosen, columns)
    rows = [
        {"moa": c.removeprefix("f1:"), "model": r["model"], "f1_mean": r[f"{c}_mean"], "f1_se": r[f"{c}_se"]}
        for c in columns
        for _, r in wide.iterrows()
    ]
    return pd.DataFrame(rows)


def table_e4(metrics: pd.DataFrame) -> pd.DataFrame:
    return summary_table(metrics, list(METRICS), by=("model", "pcs")).sort_values(["model", "pcs"], kind="stable")


def markdown(summary: pd.DataFrame, columns: dict[str, str], keys: Sequence[str], digits: int = 2) -> pd.DataFrame:
    out = summary[list(keys)].copy()
    for column, title in columns.items():
        out[title] = [
            format_mean_se(m, s, digits)
            for m, s in zip(summary[f"{column}_mean"], summary[f"{column}_se"], strict=True)
        ]
    return out


# ---------------------------------------------------------------------------------------------------------
# Which cells a model weighs most and least


def relative_weights(weights: np.ndarray, offsets: np.ndarray, column: np.ndarray | None = None) -> np.ndarray:
    """Attention weights times bag size (1 = the uniform weight), so cells of wells of different sizes
    compare. ``weights`` is (instances, K); ``column`` picks per bag which output to use (the MoA class
    of the well for class-specific attention), ignored when K == 1."""
    sizes = np.diff(offsets)
    bag_of = np.repeat(np.arange(len(sizes)), sizes)
    if weights.shape[1] == 1 or column is None:
        w = weights[:, 0]
    else:
        w = weights[np.arange(len(weights)), np.asarray(column)[bag_of]]
    return w * sizes[bag_of]


def cell_weights(weight_file: str | Path, bags: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Held-out cells of one fit with their relative weight for their well's MoA: ``bag, cell, weight``
    (``cell`` = position among the bag's instances)."""
    with np.load(weight_file) as f:
        bag_ids, offsets, weights = f["bags"].astype(str), f["offsets"], f["weights"]
    if weights.size == 0:
        return pd.DataFrame(columns=["bag", "cell", "weight"])
    moa = bags.set_index("bag").loc[bag_ids, "moa"].to_numpy()
    index = {name: k for k, name in enumerate(classes)}
    w = relative_weights(weights, offsets, np.array([index[m] for m in moa]))
    sizes = np.diff(offsets)
    return pd.DataFrame(
        {"bag": np.repeat(bag_ids, sizes), "cell": np.concatenate([np.arange(n) for n in sizes]), "weight": w}
    )


def top_bottom(
    weights: pd.DataFrame, bags: pd.DataFrame, compound: str, n: int = 16
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` highest and lowest weighted held-out cells of a compound's wells (ties by bag, cell)."""
    wells = set(bags.loc[bags["compound"] == compound, "bag"])
    chosen = weights[weights["bag"].isin(wells)].sort_values(["weight", "bag", "cell"], ascending=[False, True, True])
    return chosen.head(n), chosen.tail(n).iloc[::-1]


ARTEFACT_KINDS = ("debris", "blurred")


def kind_ranks(cells: pd.DataFrame) -> dict[str, float]:
    """Where a model puts each kind of cell (the demo's truth, column ``kind``) within its well: the mean
    within-well weight percentile per kind (0 = lowest, 1 = highest, 0.5 = indifferent), and how often a
    well's single top and bottom cell is an artefact."""
    frame = cells.assign(
        percentile=cells.groupby("bag")["weight"].rank(pct=True, method="average"),
        artefact=cells["kind"].isin(ARTEFACT_KINDS),
    )
    out = {"n_cells": len(frame), "artefact_share": float(frame["artefact"].mean())}
    for kind, group in frame.groupby(np.where(frame["artefact"], "artefact", frame["kind"])):
        out[f"percentile:{kind}"] = float(group["percentile"].mean())
    out["top_cell_is_artefact"] = float(frame.loc[frame.groupby("bag")["weight"].idxmax(), "artefact"].mean())
    out["bottom_cell_is_artefact"] = float(frame.loc[frame.groupby("bag")["weight"].idxmin(), "artefact"].mean())
    return out


def to_rgb(crop: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 DAPI/Tubulin/Actin -> (H, W, 3) float RGB: Actin red, Tubulin green, DAPI blue."""
    return np.stack([crop[2], crop[1], crop[0]], axis=-1).astype(np.float32) / 255.0


def montage_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, path: str | Path) -> None:
    """One row per model: its top and bottom cells as two 4 x 4 grids. ``panels``: (model, top crops,
    bottom crops), crops (n, 3, H, W) uint8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def grid(crops: np.ndarray, side: int = 4) -> np.ndarray:
        h, w = crops.shape[2:]
        canvas = np.ones((side * h + side - 1, side * w + side - 1, 3), dtype=np.float32)
        for k, crop in enumerate(crops[: side * side]):
            r, c = divmod(k, side)
            canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = to_rgb(crop)
        return canvas

    fig, axes = plt.subplots(len(panels), 2, figsize=(6.4, 3.2 * len(panels)), squeeze=False)
    for row, (model, top, bottom) in enumerate(panels):
        for col, (crops, which) in enumerate(((top, "top"), (bottom, "bottom"))):
            ax = axes[row, col]
            ax.imshow(grid(crops))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{model}: {which} {len(crops)}", fontsize=9)
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def microscopy_models(section, models) -> list[str]:
    """The models the microscopy branch trains (none when it is not activated), checked at parse time:
    defined under ``models:``, of a type that fits categorical labels with instance weights, and the
    main number of components among ``pca_components``."""
    if not section.get("activate", False):
        return []
    names = list(section.get("models") or [])
    if not names:
        raise ValueError("config: microscopy.models is empty; list the models to train (names under models:)")
    components = list(section.get("pca_components", [64, 256, 512]))
    main = section.get("main_components", 256)
    if main not in components:
        raise ValueError(f"config: microscopy.main_components ({main}) must be one of pca_components {components}")
    from mixmil_workflow.models.registry import model_types
    from mixmil_workflow.workflow.config_checks import check_model_names

    return check_model_names(
        "microscopy.models",
        names,
        models,
        model_types(study="microscopy"),
        purpose="the MoA task trains the attention MIL models",
    )


def number_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Add ``cell`` (position within its well, the order of the bag's instances) and ``plate_row`` (row in
    its plate's crop file) to the concatenated crop tables."""
    return cells.assign(cell=cells.groupby("bag", sort=False).cumcount(), plate_row=cells.groupby("plate").cumcount())


def held_out_cells(weight_file: str | Path, predictions_file: str | Path, bags: pd.DataFrame, cells: pd.DataFrame):
    """The held-out cells of one fit (rows of the numbered crop table) with their relative weight."""
    predictions = pd.read_csv(predictions_file, sep="\t", nrows=1)
    weights = cell_weights(weight_file, bags, class_names(predictions))
    return cells.merge(weights, on=["bag", "cell"], how="inner", validate="one_to_one")


def summarise_microscopy_sweep(runs, combos) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs``: (model, combination, repeat, validation predictions TSV). Returns the grid (Table C.5
    analogue: validation F1 macro and balanced accuracy per combination, mean over repeats) and the
    selection (Table C.6 analogue: the best F1 per model; balanced accuracy breaks ties)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from mixmil_workflow.studies.sweep import SWEEPABLE

    rows = []
    for model, combo, repeat, path in runs:
        predictions = pd.read_csv(path, sep="\t")
        y, pred = predictions["y"].to_numpy(int), predictions["score"].to_numpy(int)
        varied = {k: combos[model][combo][k] for k in SWEEPABLE if k in combos[model][combo]}
        rows.append(
            {"model": model, "combination": combo, "repeat": repeat, **varied}
            | {"f1_macro": f1_score(y, pred, average="macro"), "balanced_accuracy": balanced_accuracy_score(y, pred)}
        )
    long = pd.DataFrame(rows)
    keys = [c for c in long.columns if c not in ("repeat", "f1_macro", "balanced_accuracy")]
    grid = long.groupby(keys, sort=False, dropna=False)[["f1_macro", "balanced_accuracy"]].mean().reset_index()
    grid.insert(len(keys), "n_repeats", long.groupby(keys, sort=False, dropna=False).size().to_numpy())
    ranked = grid.sort_values(["model", "f1_macro", "balanced_accuracy"], ascending=[True, False, False])
    best = ranked.groupby("model", sort=False).head(1)
    order = {m: k for k, m in enumerate(dict.fromkeys(grid["model"]))}
    return grid, best.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)


def attach_kinds(cells: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The demo truth's ``kind`` of every crop, matched on plate, well, site and the nucleus centre (to
    1e-3 px: both tables print the same floats). A crop without a truth row is an error."""
    key = ["plate", "well", "site", "x3", "y3"]
    rounded = truth.assign(x3=truth["x"].round(3), y3=truth["y"].round(3))[[*key, "kind"]]
    out = cells.assign(x3=cells["x"].round(3), y3=cells["y"].round(3)).merge(rounded, on=key, how="left")
    if out["kind"].isna().any():
        raise MicroscopyError(f"{out['kind'].isna().sum()} crops have no row in the demo truth table")
    return out.drop(columns=["x3", "y3"])
