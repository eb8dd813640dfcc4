"""The plan of a bring-your-own-bags dataset, made when Snakemake parses the workflow (torch-free).

Checks the dataset's config against the model registry and, when the bag table already exists, against
the table (bag count for the folds, missing labels against the models), so that a wrong setting stops the
run before any job; then lists the fit jobs: one per label, model and (repeat, fold), or one per label and
model running all of its folds and repeats (``fits_per_job``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mixmil_workflow.own_bags.input import TABLE_READERS, DatasetError, LabelSpec
from mixmil_workflow.own_bags.protocol import protocol_folds

# fits_per_job "auto": all of a model's fits in one job when the instance file is at most this large
# (loading torch and the data costs a job seconds and ~1 GB; small datasets train in seconds per fold).
ONE_JOB_MAX_MB = 512


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    labels: dict[str, LabelSpec]
    units: dict[str, list[tuple[int, int]]]  # job unit name -> its (repeat, fold) fits
    dataset: Mapping  # the dataset's config entry

    def runs(self, models) -> list[tuple[str, str, str]]:
        return [(label, model, unit) for label in self.labels for model in models for unit in self.units]

    def input_settings(self) -> dict:
        """What the prepare step reads: the inputs and the protocol, not the models or the preprocessing, so
        that adding a model or changing preprocessing reruns only the fits that use it."""
        keys = ("bag_column", "id_column", "embedding", "labels", "covariates", "protocol")
        return {key: self.dataset[key] for key in keys}

    def fit_settings(self, label: str, model: str) -> dict:
        """What one label x model's fits depend on besides the prepared data and the model entry."""
        ds = self.dataset
        return {
            "label": vars(self.labels[label]),
            "covariates": ds["covariates"],
            "id_column": ds["id_column"],
            "embedding": ds["embedding"],
            "preprocessing": ds["preprocessing"],
            "class_weight": ds["class_weight"],
            "search": ds["tuning"]["search"].get(model, {}),
            "inner_folds": ds["tuning"]["inner_folds"],
        }

    def fit_runtime(self, label: str, model: str, unit: str, spec: Mapping, table: str | Path, input_mb: float,
                    threads: int, attempt: int, scaling) -> int:  # fmt: skip
        """A fit job's runtime request (workflow/resources.py: dataset_fit_runtime): its bags (the prepared
        table's rows), its matrix's size (the inputs but the table), its outer fits and, under nested
        tuning, the search's fits per outer fold."""
        from mixmil_workflow.workflow.resources import dataset_fit_runtime, search_fits

        settings = self.fit_settings(label, model)
        n_bags = _table_rows(str(table), Path(table).stat().st_mtime_ns)
        return dataset_fit_runtime(
            spec, n_bags, input_mb - Path(table).stat().st_size / 2**20, 1, threads, attempt,  # one label per fit
            n_fits=len(self.units[unit]), search_fits=search_fits(settings["search"], settings["inner_folds"]),
            scaling=scaling,
        )  # fmt: skip


@functools.lru_cache(maxsize=64)
def _table_rows(path: str, mtime_ns: int) -> int:
    """Rows of a prepared bag table, read once per version of the file: every fit job of a dataset asks
    for its runtime with the same table."""
    from mixmil_workflow.io import read_table

    return len(read_table(path))


def unit_name(repeat: int, fold: int) -> str:
    return f"r{repeat}f{fold}"


def plan_dataset(name: str, dataset: Mapping, models: Mapping) -> DatasetPlan:
    field = f"config: datasets.{name}"
    labels = {col: LabelSpec.parse(col, spec) for col, spec in dataset["labels"].items()}
    check_models(name, labels, dataset["models"], models)
    protocol = dataset["protocol"]
    if protocol["n_repeats"] > 1 and (protocol["kind"] == "split" or protocol.get("fold_column")):
        raise ValueError(
            f"{field}.protocol: n_repeats is {protocol['n_repeats']}, but a given split or fold_column fixes the "
            "folds; set n_repeats: 1 or let the folds be drawn"
        )
    _check_search(name, dataset, models)
    _check_against_table(name, dataset, labels, models)
    folds = protocol_folds(protocol)
    if _one_job(dataset):
        units = {"all": folds}
    else:
        units = {unit_name(r, k): [(r, k)] for r, k in folds}
    return DatasetPlan(name, labels, units, dataset)


def _one_job(dataset: Mapping) -> bool:
    choice = dataset["fits_per_job"]
    if choice != "auto":
        return choice == "all"
    path = Path(dataset["instances"])
    return not path.exists() or path.stat().st_size <= ONE_JOB_MAX_MB * 2**20


def check_models(dataset_name: str, labels: Mapping[str, LabelSpec], model_names, models: Mapping) -> None:
    """Every model defined and able to fit every label's likelihood."""
    from mixmil_workflow.models.registry import check_likelihood, model_types
    from mixmil_workflow.workflow.config_checks import check_model_names

    allowed = model_types(study="own_bags")
    field = f"datasets.{dataset_name}.models"
    for name in check_model_names(field, model_names, models, allowed, purpose="datasets train"):
        for label, spec in labels.items():
            check_likelihood(f"datasets.{dataset_name}", name, models[name], spec.likelihood, f"label {label!r}")


def _check_search(name: str, dataset: Mapping, models: Mapping) -> None:
    from mixmil_workflow.models.registry import check_options, spec_type

    search = dataset["tuning"]["search"]
    for model, space in search.items():
        if model not in dataset["models"]:
            raise ValueError(
                f"config: datasets.{name}.tuning.search.{model}: {model!r} is not in datasets.{name}.models "
                f"({', '.join(dataset['models'])}); search only the models the dataset trains"
            )
        check_options(spec_type(models[model]), space, f"config: datasets.{name}.tuning.search.{model}")
        empty = [key for key, values in space.items() if not values]
        if empty:
            raise ValueError(f"config: datasets.{name}.tuning.search.{model}: no values for {empty}")


def read_table(path: Path, id_column: str):
    """The bag table (ids as text), or None when it does not exist yet (made by a rule) or cannot be read:
    the prepare step then checks the same before any training, with the reader's own error."""
    from mixmil_workflow.own_bags.input import read_bag_table

    if not path.exists() or path.suffix.lower() not in TABLE_READERS:
        return None
    try:
        return read_bag_table(path, id_column)
    except DatasetError:
        return None


def _check_against_table(name: str, dataset: Mapping, labels: Mapping[str, LabelSpec], models: Mapping) -> None:
    from mixmil_workflow.models.registry import leaves_out_missing_labels
    from mixmil_workflow.workflow.config_checks import did_you_mean

    path = Path(dataset["table"])
    frame = read_table(path, dataset["id_column"])
    if frame is None:
        return  # made by a rule: the prepare step checks the same before any training
    where = f"config: datasets.{name}"
    protocol = dataset["protocol"]
    if protocol["kind"] != "split":
        column = protocol.get("group_column") if protocol["kind"] == "groups" else None
        if column is not None and column not in frame.columns:
            hint = did_you_mean(column, frame.columns)
            raise DatasetError(f"{where}.protocol.group_column: {path} has no column {column!r}; {hint}".rstrip("; "))
        units = frame[column].nunique() if column else len(frame)
        if protocol["n_folds"] > units:
            raise DatasetError(
                f"{where}.protocol.n_folds is {protocol['n_folds']}, but {path} has {units} "
                f"{'groups' if column else 'bags'}; n_folds can be at most that (leave-one-out) and is usually 5 or 10"
            )
    for label, spec in labels.items():
        if label not in frame.columns:
            hint = did_you_mean(label, frame.columns)
            raise DatasetError(f"{where}.labels.{label}: {path} has no column {label!r}; {hint}".rstrip("; "))
        n_missing = int(frame[label].isna().sum())
        if n_missing:
            refusing = [m for m in dataset["models"] if not leaves_out_missing_labels(models[m], spec.likelihood)]
            if refusing:
                raise DatasetError(
                    f"{where}.labels.{label}: {n_missing} bag(s) of {path} have no label, and model(s) {refusing} "
                    "cannot leave them out of their fit; only MixMIL and the GLMM with missing_labels: true can "
                    "(binomial / Bernoulli labels): set it on those models, drop the others, or drop the bags"
                )
