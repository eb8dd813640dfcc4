"""A cluster profile's mistakes stop the run with the profile key named (workflow/profile_checks.py).

The partition check against a live cluster's sinfo runs on the real test cluster (test_slurm.py); here the
parse-time check of set-resources through Snakemake, and the partition check's wording.
"""

from __future__ import annotations

import pytest

from mixmil_workflow.workflow.profile_checks import ProfileError, check_partitions, check_resource_overrides
from tests.support.workflow import REPO, snakemake

CONFIG = str(REPO / "tests" / "configs" / "slurm.yaml")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("fit_simulaton:mem_mb=4000", "set-resources.fit_simulaton: this workflow has no rule 'fit_simulaton'; "
                                      "did you mean 'fit_simulation'?"),
        ("fit_simulation:gpus=1", "set-resources.fit_simulation.gpus: rule fit_simulation declares no resource "
                                  "'gpus' and the SLURM executor reads none by that name; did you mean 'gpu'?"),
        ("simulate_data:cpus_per_gpu=4", "set-resources.simulate_data.cpus_per_gpu: rule simulate_data asks for "
                                         "no GPU"),
    ],
)  # fmt: skip
def test_a_set_resources_entry_for_nothing_is_refused_at_parse_time(tmp_path, override, expected):
    result = snakemake("-n", "--configfile", CONFIG, "--directory", str(tmp_path), "--set-resources", override,
                       check=False)  # fmt: skip
    message = result.stdout + result.stderr
    assert result.returncode != 0 and expected in message, message[-3000:]
    assert not (tmp_path / "results").exists()


def test_resources_the_rule_declares_or_slurm_reads_pass(tmp_path):
    snakemake("-n", "--configfile", CONFIG, "--directory", str(tmp_path), "--set-resources",
              "fit_simulation:mem_mb=9000", "fit_simulation:cpus_per_gpu=2", "simulate_data:slurm_partition=cpu",
              "aggregate_simulation:constraint=avx2")  # fmt: skip
    check_resource_overrides({"fit": {"gpu": 1}}, {"fit": {"gpu", "mem_mb"}})


def test_partitions_the_cluster_lacks_are_named_with_their_profile_key(tmp_path):
    partitions = tmp_path / "partitions.yaml"
    partitions.write_text("partitions:\n  cpu: {max_gpu: 0}\n  gpux: {max_gpu: 4}\n")
    with pytest.raises(ProfileError) as error:
        check_partitions(partitions, {"set-resources.fit.slurm_partition": "bigmem"}, {"cpu", "gpu"})
    message = str(error.value)
    assert f"slurm-partition-config ({partitions}): partitions.gpux: the cluster has no partition" in message
    assert "did you mean 'gpu'?" in message and "sinfo lists cpu, gpu" in message
    assert "set-resources.fit.slurm_partition: the cluster has no partition 'bigmem'" in message
    check_partitions(partitions, {}, {"cpu", "gpux", "debug"})
