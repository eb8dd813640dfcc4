"""A generated bring-your-own-bags example: cells of donors in an AnnData file, a donor table beside it.

Shaped like a single-cell genetics study: each donor (bag) has a variable number of cells with a
16-d embedding in ``obsm["X_scvi"]`` and a cell type in ``obs``; the donor table has a genotype dosage
(binomial, n = 2), a disease status (Bernoulli), age (a covariate), the sequencing pool (for held-out
groups) and a train/test split. Both labels come from MixMIL's generative model: a few cells per donor,
chosen by an attention direction, carry the signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path


def write_example_dataset(
    h5ad_path: str | Path,
    table_path: str | Path,
    n_donors: int = 120,
    n_features: int = 16,
    min_cells: int = 5,
    max_cells: int = 40,
    seed: int = 0,
) -> None:
    import anndata

    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_cells, max_cells + 1, n_donors)
    sizes[0] = 1  # one donor with a single cell: allowed
    donors = np.array([f"donor_{d:03d}" for d in range(n_donors)])
    donor_of_cell = np.repeat(donors, sizes)
    cell_type = rng.choice(["CD4", "CD8", "NK"], len(donor_of_cell), p=[0.5, 0.3, 0.2])
    type_shift = {"CD4": 0.0, "CD8": 1.0, "NK": -1.0}
    x = rng.standard_normal((len(donor_of_cell), n_features))
    x[:, 1] += np.vectorize(type_shift.get)(cell_type)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def bag_effect(gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
        logits = x @ gamma
        weights = np.exp(logits - np.maximum.reduceat(logits, starts)[np.repeat(np.arange(n_donors), sizes)])
        weights /= np.add.reduceat(weights, starts)[np.repeat(np.arange(n_donors), sizes)]
        u = np.add.reduceat(weights * (x @ beta), starts)
        return (u - u.mean()) / u.std()

    age = rng.normal(55, 12, n_donors).round(1)
    age_effect = 0.3 * (age - age.mean()) / age.std()
    u_dosage = bag_effect(2.0 * rng.standard_normal(n_features) / np.sqrt(n_features), rng.standard_normal(n_features))
    u_disease = bag_effect(2.0 * rng.standard_normal(n_features) / np.sqrt(n_features), rng.standard_normal(n_features))
    dosage = rng.binomial(2, 1 / (1 + np.exp(-(-0.5 + 1.2 * u_dosage + age_effect))))
    disease = rng.binomial(1, 1 / (1 + np.exp(-(1.5 * u_disease + age_effect))))
    order = rng.permutation(len(donor_of_cell))  # cells are not grouped by donor in the file
    obs = pd.DataFrame(
        {"donor": donor_of_cell[order], "cell_type": cell_type[order]},
        index=[f"cell_{i:05d}" for i in range(len(order))],
    )
    adata = anndata.AnnData(X=np.zeros((len(order), 0), dtype=np.float32), obs=obs)
    adata.obsm["X_scvi"] = x[order].astype(np.float32)
    table = pd.DataFrame(
        {
            "donor": donors,
            "dosage": dosage,
            "disease": disease,
            "age": age,
            "pool": [f"pool_{k % 8}" for k in rng.permutation(n_donors)],
            "split": np.where(rng.random(n_donors) < 0.25, "test", "train"),
        }
    )
    with atomic_path(h5ad_path) as tmp:
        adata.write_h5ad(tmp)
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
