"""A sparse multi-task MIL simulation for MoMIL (issue: MoMIL beats single-task MIL where labels are
90-96 % missing and tasks share structure).

Bags of ``n_instances`` standard-normal instances in ``n_features`` dimensions. A few latent *programs*
each have a unit direction; a bag is active in a program with probability ``activity``, and then a
fraction (uniform in ``responder_fraction``) of its instances is shifted by ``shift`` along that
direction. Each program drives ``tasks_per_program`` related tasks (assays): a task's label is its
program's activity, flipped with a task-specific probability (uniform in ``label_noise``). The first task
of every program is *primary* (evaluated); the others are *secondary* (auxiliary). ``n_unrelated``
extra secondary tasks have random labels (what task selection should drop). Observed labels: each
entry is missing with probability ``missing_primary`` / ``missing_secondary``; every task keeps at
least two observed labels of each class in the training bags. Bags are split into train / validation /
test; the evaluation is the mean ROC-AUC over primary tasks on the test bags against the full labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MultitaskParams:
    n_bags: int = 600
    n_instances: int = 30
    n_features: int = 16
    n_programs: int = 3
    tasks_per_program: int = 4
    n_unrelated: int = 3
    activity: float = 0.4
    responder_fraction: tuple[float, float] = (0.15, 0.4)
    shift: float = 1.5
    label_noise: tuple[float, float] = (0.02, 0.12)
    missing_primary: float = 0.9
    missing_secondary: float = 0.94
    validation_fraction: float = 0.2
    test_fraction: float = 0.25

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class MultitaskData:
    x: np.ndarray  # (bags, instances, features) float32
    labels: np.ndarray  # (bags, tasks) full labels, 0/1
    observed: np.ndarray  # (bags, tasks) labels with NaN where missing (test bags: all NaN)
    program: np.ndarray  # (tasks,) program of each task, -1 for unrelated tasks
    primary: np.ndarray  # (tasks,) bool
    split: np.ndarray  # (bags,) "train" / "validation" / "test"
    responders: np.ndarray  # (bags, instances) program index of a shifted instance, -1 otherwise

    @property
    def n_tasks(self) -> int:
        return self.labels.shape[1]

    @property
    def task_names(self) -> list[str]:
        """Task names as a task-similarity table refers to them: task0, task1, ..."""
        return [f"task{t}" for t in range(self.n_tasks)]


def simulate_multitask(params: MultitaskParams, seed: int) -> MultitaskData:
    rng = np.random.default_rng(seed)
    p = params
    x = rng.standard_normal((p.n_bags, p.n_instances, p.n_features)).astype(np.float32)
    directions = rng.standard_normal((p.n_programs, p.n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    active = rng.uniform(size=(p.n_bags, p.n_programs)) < p.activity
    responders = np.full((p.n_bags, p.n_instances), -1)
    for b in range(p.n_bags):
        free = rng.permutation(p.n_instances)
        start = 0
        for k in np.flatnonzero(active[b]):
            n = max(1, int(round(rng.uniform(*p.responder_fraction) * p.n_instances)))
            chosen = free[start : start + n]
            start += n
            x[b, chosen] += (p.shift * directions[k]).astype(np.float32)
            responders[b, chosen] = k
    program = np.concatenate([np.repeat(np.arange(p.n_programs), p.tasks_per_program), np.full(p.n_unrelated, -1)])
    primary = np.zeros(len(program), dtype=bool)
    primary[np.arange(p.n_programs) * p.tasks_per_program] = True
    labels = np.zeros((p.n_bags, len(program)))
    for t, k in enumerate(program):
        if k < 0:
            labels[:, t] = rng.uniform(size=p.n_bags) < p.activity
        else:
            flip = rng.uniform(size=p.n_bags) < rng.uniform(*p.label_noise)
            labels[:, t] = np.where(flip, ~active[:, k], active[:, k])
    order = rng.permutation(p.n_bags)
    n_test, n_val = int(round(p.test_fraction * p.n_bags)), int(round(p.validation_fraction * p.n_bags))
    split = np.full(p.n_bags, "train", dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "validation"
    missing = rng.uniform(size=labels.shape) < np.where(primary, p.missing_primary, p.missing_secondary)[None, :]
    observed = np.where(missing, np.nan, labels)
    observed[split == "test"] = np.nan
    # every task keeps two labels of each class among the training bags (else it cannot be trained)
    train = np.flatnonzero(split == "train")
    for t in range(len(program)):
        for value in (0.0, 1.0):
            have = np.flatnonzero(observed[train, t] == value)
            if len(have) < 2:
                pool = train[(labels[train, t] == value) & (observed[train, t] != value)]
                observed[rng.choice(pool, size=2 - len(have), replace=False), t] = value
    return MultitaskData(x, labels, observed, program, primary, split, responders)
