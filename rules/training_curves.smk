# One figure per study: every model's training loss against the epoch, from the loss histories its fit
# jobs wrote.


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
        study="|".join(re.escape(s) for s in TRAINING_CURVES) or "no-study",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/training_curves.py"),
        models=lambda wc: list(TRAINING_CURVES[wc.study].values()),
    script:
        "../scripts/training_curves.py"
