"""Genetic labels as MIL tasks (paper Section 4.3): bags = donors, instances = their cells' scVI
embeddings, labels = allele counts (Binomial, n = 2) of the selected variants, covariates sex, age and
the genetic PCs; 5-fold stacked cross-validation, every label fitted at once as one output of P.

Negative controls are variants of the universe that failed the GLMM screen, drawn at random and trained
next to the labels: a MIL model that finds signal there is overfitting the screen's winners' curse or
the population structure, so their out-of-fold Spearman should sit near zero. They never enter Fig. 3 or
Table E.2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

LABEL_LIKELIHOOD = {"likelihood": "binomial", "n_trials": 2}
ROLES = ("label", "negative_control")


def negative_controls(screen: pd.DataFrame, min_spearman: float, n_controls: int, seed: int) -> list[str]:
    """``n_controls`` variants drawn at random (seeded) from those that failed the GLMM screen
    (out-of-fold Spearman at most ``min_spearman``); fewer when fewer failed."""
    failed = np.sort(screen.loc[screen["spearman"] <= min_spearman, "rsid"].astype(str).to_numpy())
    if n_controls <= 0 or len(failed) == 0:
        return []
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(failed, size=min(n_controls, len(failed)), replace=False).tolist())


def trained_variants(labels: pd.DataFrame, controls: Sequence[str]) -> pd.DataFrame:
    """The variants the models are trained on, in output order: labels (strongest screen first), then
    negative controls. Columns ``rsid``, ``role``."""
    out = pd.DataFrame({"rsid": list(labels["rsid"].astype(str)) + list(controls)})
    out["role"] = ["label"] * len(labels) + ["negative_control"] * len(controls)
    if out["rsid"].duplicated().any():
        raise ValueError(f"variants both label and control: {sorted(out.loc[out['rsid'].duplicated(), 'rsid'])}")
    return out


def genetics_bag_table(donors: pd.DataFrame, dosages: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """One row per donor: ``donor_id``, ``sample``, the covariates and one dosage column per variant.
    ``dosages`` is indexed by VCF sample. A donor without a genotype is an error naming it."""
    missing = sorted(set(donors["sample"]) - set(dosages.index))
    if missing:
        raise ValueError(f"no dosages for {len(missing)} donor sample(s), e.g. {missing[:3]}")
    absent = [v for v in variants if v not in dosages.columns]
    if absent:
        raise ValueError(f"no dosages for variant(s) {absent[:5]}")
    table = donors.join(dosages[list(variants)], on="sample")
    table["donor_id"] = table["donor_id"].astype(str)
    return table


def genetics_models(section: Mapping, models: Mapping) -> tuple[list[str], str | None]:
    """The models trained on the genetic labels and the reference (the first MixMIL among them), checked
    at parse time. Empty (and no reference) when the branch is off or trains nothing."""
    from mixmil_workflow.models.registry import model_types, spec_type
    from mixmil_workflow.workflow.config_checks import check_model_names

    if not section.get("activate", False) or not section.get("models"):
        return [], None
    names = check_model_names(
        "genetics.models",
        section["models"],
        models,
        model_types(study="genetics"),
        purpose="the genetic labels are fitted by MixMIL, the GLMM and the MIL baselines",
    )
    references = [m for m in names if spec_type(models[m]).is_reference]
    if not references:
        kinds = " or ".join(map(repr, model_types(is_reference=True)))
        raise ValueError(
            f"config: genetics.models has no model of type {kinds}; Fig. 3 and Table E.2 compare the baselines "
            "with MixMIL, so list one"
        )
    return names, references[0]


def genetics_baselines(names: Iterable[str], models: Mapping) -> list[str]:
    """The MIL baselines among the genetics models (Fig. 3's wins, Fig. E.3's comparisons): the neural MIL
    models, MoMIL included, not MixMIL and not the GLMM."""
    from mixmil_workflow.models.registry import spec_type

    return [name for name in names if spec_type(models[name]).family == "mil"]


def genetics_covariates(n_genetic_pcs: int) -> list[str]:
    """The covariates of every genetics model (paper Section 4.3): sex, age and the leading genetic PCs."""
    return ["sex", "age", *(f"PC{k}" for k in range(1, n_genetic_pcs + 1))]
