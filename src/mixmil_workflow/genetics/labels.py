"""Genetic labels (Appendix D.1): donor dosages of the universe's variants, the GLMM screen (variants
predictable from the donors' mean cell embeddings, out-of-fold Spearman > 0.15, covariates sex, age and
genetic PCs); LD clumping of the survivors is PLINK's (:func:`mixmil_workflow.genetics.plink.clump`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mixmil_workflow.genetics.samples import vcf_sample_of


def donor_table(obs: pd.DataFrame, pcs: pd.DataFrame) -> pd.DataFrame:
    """One row per donor (index donor_id): VCF sample, sex (1 = male), age and the genetic PCs."""
    from mixmil_workflow.genetics.cells import donor_covariates

    donors = donor_covariates(obs)
    donors.insert(0, "sample", [vcf_sample_of(d) for d in donors.index])
    missing = sorted(set(donors["sample"]) - set(pcs.index))
    if missing:
        raise ValueError(f"genetic PCs lack {len(missing)} donor sample(s), e.g. {missing[:3]}")
    return donors.join(pcs, on="sample")


def donor_mean_embeddings(embedding: np.ndarray, donor_of_cell: Sequence[str], donors: Sequence[str]) -> np.ndarray:
    """Mean embedding per donor, rows in the order of ``donors``."""
    frame = pd.DataFrame(np.asarray(embedding, dtype=np.float64)).groupby(np.asarray(donor_of_cell)).mean()
    return frame.loc[list(donors)].to_numpy()


def glmm_screen(
    means: np.ndarray,
    dosages: pd.DataFrame,
    covariates: np.ndarray,
    n_folds: int,
    seed: int,
    first: int = 0,
) -> pd.DataFrame:
    """Per variant: out-of-fold Spearman (and its p-value) of a binomial(2) GLMM on the donors' mean
    embeddings with the covariates as fixed effects, 5-fold stacked as in the paper's evaluation.
    ``first``: the universe index of the first column (a chunk's offset), so that each variant's seed,
    and hence the result, does not depend on how the universe is chunked."""
    from mixmil_workflow.models.glmm import GLMM
    from mixmil_workflow.own_bags.input import stacked_folds

    folds = stacked_folds(len(means), n_folds, seed)
    rows = []
    for k, rsid in enumerate(dosages.columns):
        y = dosages[rsid].to_numpy(dtype=np.float32)[:, None]
        prediction = np.empty(len(y))
        for fold in range(n_folds):
            test = folds == fold
            model = GLMM("binomial", n_trials=2, seed=seed + first + k).fit(means[~test], y[~test], covariates[~test])
            prediction[test] = model.linear_predictor(means[test], covariates[test])[:, 0]
        rho, p_value = spearmanr(prediction, y[:, 0])
        rows.append((rsid, float(rho) if np.isfinite(rho) else 0.0, float(p_value) if np.isfinite(p_value) else 1.0))
    return pd.DataFrame(rows, columns=["rsid", "spearman", "p_value"])


def screen_chunk_columns(n_variants: int, chunk: int, n_chunks: int) -> tuple[int, int]:
    """[first, stop) of the variants in ``chunk`` of ``n_chunks`` contiguous, near-equal blocks (empty
    when there are more chunks than variants)."""
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{n_chunks - 1}")
    bounds = np.linspace(0, n_variants, n_chunks + 1).round().astype(int)
    return int(bounds[chunk]), int(bounds[chunk + 1])


def label_steps(n_universe: int, n_screened: int, n_labels: int, min_spearman: float) -> pd.DataFrame:
    """Variant counts from the universe to the labels, next to the paper's (Appendix D.1)."""
    return pd.DataFrame(
        {
            "step": ["variant universe", f"GLMM screen: Spearman > {min_spearman}", "LD clumping"],
            "variants": [n_universe, n_screened, n_labels],
            "paper": ["16,718", "", "28"],
        }
    )
