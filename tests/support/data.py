"""Small data the unit tests share."""

from __future__ import annotations

import numpy as np


def ragged_bags(seed: int = 0, n_bags: int = 7, q: int = 4, max_size: int = 9):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, max_size)), q)) for _ in range(n_bags)]
