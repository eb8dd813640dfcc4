# The reproduction scorecard: the paper's published values (src/mixmil_workflow/reference/paper_values.tsv)
# beside this run's, for every table the configuration produced.


rule scorecard:
    input:
        **SCORECARD_TABLES,
    output:
        tsv="results/scorecard/scorecard.tsv",
        md="results/scorecard/scorecard.md",
        html=report(
            "results/scorecard/scorecard.html",
            caption="../report/scorecard.rst",
            category="Reproduction scorecard",
        ),
    log:
        "logs/scorecard.log",
    conda:
        "../envs/mil.yaml"
    params:
        code=package_code("scripts/scorecard/scorecard.py"),
        models=SCORECARD_MODELS,
        # the published values are data, not code: their digest reruns the rule when they change
        paper_values=hashlib.sha256(PAPER_VALUES.read_bytes()).hexdigest(),
        provenance=table_provenance(list(SCORECARD_MODELS)),
    script:
        "../scripts/scorecard/scorecard.py"
