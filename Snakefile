# MixMIL reproduction workflow (Engelmann et al., AISTATS 2024).
# Default: the embedded demo (config/config.yaml). Full paper: --configfile config/paper.yaml


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/simulation.smk"


report: "report/workflow.rst"


localrules:
    all,
    evaluate_simulation,
    aggregate_simulation,
    simulation_figures,


rule all:
    default_target: True
    input:
        final_outputs(),
