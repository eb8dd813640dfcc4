"""Checks of what a cluster profile asks for, before any job is submitted.

Snakemake ignores a ``set-resources`` entry for a rule that does not exist or a resource that nothing
reads, and the SLURM plugin passes a partition it was told about to sbatch as is, so such mistakes
surface as jobs that quietly run with the wrong resources, or as one sbatch error per job hours into a
run. These checks name the profile key instead:

- ``check_resource_overrides`` (at parse time, every executor): each ``set-resources.<rule>.<resource>``
  names a rule of the workflow and a resource that the rule declares or that the SLURM plugin reads
  (``SLURM_RESOURCES``); ``cpus_per_gpu`` only for a rule that asks for a GPU;
- ``check_partitions`` (at the start of a SLURM run): every partition of the profile's
  ``slurm-partition-config`` file and every ``slurm_partition`` resource exists on the cluster (sinfo).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from mixmil_workflow.workflow.config_checks import did_you_mean

# Resources the SLURM executor plugin (2.x) turns into sbatch options, and Snakemake's own.
SLURM_RESOURCES = frozenset(
    {
        "slurm_partition", "slurm_account", "slurm_extra", "slurm_cluster", "cluster", "clusters", "qos",
        "constraint", "runtime", "mem_mb", "mem", "mem_mb_per_cpu", "mem_mib", "cpus_per_task",
        "cpus_per_gpu", "tasks", "tasks_per_gpu", "nodes", "gres", "gpu", "gpu_model", "mpi", "disk_mb",
        "disk", "disk_mib", "tmpdir",
    }
)  # fmt: skip


class ProfileError(ValueError):
    """A cluster profile's key asks for something this workflow or cluster does not have."""


def check_resource_overrides(overrides: Mapping[str, Mapping], declared: Mapping[str, Iterable[str]]) -> None:
    """Refuse ``set-resources`` entries (``overrides``: rule -> {resource: value}) for unknown rules, or for
    resources the rule does not declare and SLURM does not read. ``declared``: rule -> its resource names as
    Snakemake holds them, the overrides already merged in (it keeps no other copy), so a name counts as the
    rule's own only when the profile does not set it."""
    problems = []
    for rule, resources in overrides.items():
        if rule not in declared:
            problems.append(
                f"set-resources.{rule}: this workflow has no rule {rule!r}; {did_you_mean(rule, declared)}"
                "use a rule name from `snakemake --list-rules`."
            )
            continue
        own = set(declared[rule]) - {"_cores", "_nodes"} - set(resources)
        for name in resources:
            where = f"set-resources.{rule}.{name}"
            if name == "cpus_per_gpu" and "gpu" not in declared[rule]:
                problems.append(f"{where}: rule {rule} asks for no GPU, so cpus_per_gpu has no effect; remove it "
                                "or use cpus_per_task.")  # fmt: skip
            elif name not in own and name not in SLURM_RESOURCES:
                known = sorted(own | SLURM_RESOURCES)
                problems.append(
                    f"{where}: rule {rule} declares no resource {name!r} and the SLURM executor reads none by "
                    f"that name; {did_you_mean(name, known)}the rule declares {sorted(own) or 'none'}."
                )
    if problems:
        raise ProfileError("cluster profile: " + "\n".join(problems))


def cluster_partitions(sinfo: str = "sinfo") -> set[str]:
    """The partitions the cluster has (``sinfo``; a trailing ``*`` marks the default)."""
    out = subprocess.run([sinfo, "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout
    return {name.strip().rstrip("*") for name in out.split() if name.strip()}


def check_partitions(partition_config: Path | None, requested: Mapping[str, str], available: set[str]) -> None:
    """Refuse partitions that the cluster lacks: those of the profile's ``slurm-partition-config`` file and
    the ``slurm_partition`` resources (``requested``: profile key -> partition)."""
    import yaml

    named: dict[str, str] = dict(requested)
    if partition_config is not None:
        partitions = (yaml.safe_load(Path(partition_config).read_text()) or {}).get("partitions") or {}
        named.update({f"slurm-partition-config ({partition_config}): partitions.{p}": p for p in partitions})
    problems = [
        f"{key}: the cluster has no partition {name!r} (sinfo lists {', '.join(sorted(available)) or 'none'}); "
        f"{did_you_mean(name, available)}rename it to one of the site's partitions."
        for key, name in named.items()
        if name not in available
    ]
    if problems:
        raise ProfileError("cluster profile: " + "\n".join(problems))


def check_slurm_run(workflow) -> None:
    """At the start of a run through the SLURM executor (the Snakefile's onstart): the profile's partitions
    (its partition file, default-resources and set-resources) exist on the cluster."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm" or workflow.dryrun:
        return
    settings = workflow.resource_settings
    requested = {"default-resources.slurm_partition": (settings.default_resources or {}).get("slurm_partition")}
    requested.update(
        {
            f"set-resources.{rule}.slurm_partition": res.get("slurm_partition")
            for rule, res in settings.overwrite_resources.items()
        }  # fmt: skip
    )
    # Snakemake holds each value as a Resource (its .value None when the key is absent)
    values = {key: getattr(value, "value", value) for key, value in requested.items()}
    named = {key: str(value).strip("'\"") for key, value in values.items() if value not in (None, "")}
    check_partitions(workflow.executor_settings.partition_config, named, cluster_partitions())
