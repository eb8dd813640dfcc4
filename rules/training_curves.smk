# One figure per study: every model's training loss against the epoch, from the loss histories its fit
# jobs wrote (rules/plan/training_curves.smk lists them).


rule training_curves:
    input:
        lambda wc: list(TRAINING_CURVES[wc.study]),
    output:
        report(
            "results/{study}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training curves",
        ),
    log:
        "logs/training_curves/{study}.log",
    wildcard_constraints:
        study="|".join(TRAINING_CURVES) or "no-study",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/training_curves.py"),
        models=lambda wc: list(TRAINING_CURVES[wc.study].values()),
        title=lambda wc: wc.study,
    script:
        "../scripts/training_curves.py"


# the same for each of your datasets (its figure beside its comparison)
rule dataset_training_curves:
    input:
        lambda wc: list(DATASET_TRAINING_CURVES[wc.dataset]),
    output:
        report(
            "results/datasets/{dataset}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training curves",
        ),
    log:
        "logs/datasets/{dataset}/training_curves.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/training_curves.py"),
        models=lambda wc: list(DATASET_TRAINING_CURVES[wc.dataset].values()),
        title=lambda wc: f"datasets/{wc.dataset}",
    script:
        "../scripts/training_curves.py"
