# MixMIL reproduction workflow (Engelmann et al., AISTATS 2024).
# Default: the embedded demo (config/config.yaml). Full paper: --configfile config/paper.yaml


# The demo config is the default only: a config given with --configfile replaces it instead of being
# merged into it (a merge would leak demo-only keys, e.g. per-model scenario lists, into other runs).
# --config key=value still applies on top of either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/plan/resources.smk"
include: "rules/plan/simulation.smk"
include: "rules/plan/costs.smk"
include: "rules/plan/sweep.smk"
include: "rules/plan/camelyon16.smk"
include: "rules/plan/datasets.smk"
include: "rules/plan/genetics.smk"
include: "rules/plan/microscopy.smk"
include: "rules/plan/momil.smk"
include: "rules/plan/smmile.smk"
include: "rules/plan/scorecard.smk"
include: "rules/plan/training_curves.smk"
include: "rules/simulation.smk"
include: "rules/costs.smk"
include: "rules/sweep.smk"
include: "rules/camelyon16.smk"
include: "rules/datasets.smk"
include: "rules/genetics.smk"
include: "rules/microscopy.smk"
include: "rules/momil.smk"
include: "rules/smmile.smk"
include: "rules/scorecard.smk"
include: "rules/training_curves.smk"


report: "report/workflow.rst"


# aggregate_simulation and select_sweep are not local: they evaluate every fit (minutes for the paper's grid).
localrules:
    all,
    simulation_figures,
    select_camelyon16_sweep,
    download_camelyon16,
    download_onek1k,
    camelyon16_table3,
    compare_dataset,
    clump_labels,
    screen_variants,
    genetics_results,
    genetics_planted_recovery,
    download_bbbc021,
    microscopy_results,
    microscopy_cell_kinds,
    momil_summary,
    spatial_simulation,
    spatial_summary,
    scorecard,
    training_curves,
    dataset_training_curves,


rule all:
    default_target: True
    input:
        final_outputs(),


# What a cluster profile asks for, checked before any job runs (workflow/profile_checks.py): set-resources
# entries for rules and resources that exist, at parse time; the SLURM partitions, at the start of a run.
check_resource_overrides(
    workflow.resource_settings.overwrite_resources,
    {rule.name: set(rule.resources) for rule in workflow.rules},
)


onstart:
    check_slurm_run(workflow)
