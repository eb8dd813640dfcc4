# The plan of the scorecard (rules/scorecard.smk): which parts of the workflow this run has, from the
# other plans; the package (mixmil_workflow.scorecard) knows which table each part writes.


SCORECARD_TABLES = source_tables(
    {
        "simulation": bool(SIMULATION["activate"]),
        "costs": bool(COST_MODELS),
        "genetics": bool(GENETICS["activate"] and GENETICS_MODELS),
        "genetics_costs": bool(GENETICS["activate"] and GENETICS_COST_MODELS),
        "microscopy": bool(MICROSCOPY_MODELS),
        "camelyon16": bool(CAMELYON16_MODELS),
    }
)

# the models behind those tables (its parameters: editing another model reruns nothing here)
SCORECARD_MODELS = (
    {
        name: config["models"][name]
        for name in dict.fromkeys(
            [*SIMULATION_MODELS, *COST_MODELS, *MICROSCOPY_MODELS, *CAMELYON16_MODELS]
            + (GENETICS_MODELS if GENETICS["activate"] else [])
        )
    }
    if SCORECARD_TABLES
    else {}
)


def scorecard_outputs():
    # always: a configuration without a published counterpart gets a scorecard that says so (the
    # report's front page links it)
    return [
        "results/scorecard/scorecard.tsv",
        "results/scorecard/scorecard.md",
        "results/scorecard/scorecard.html",
    ]
