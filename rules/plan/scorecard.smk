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


def scorecard_configfiles():
    """The run's config files as the scorecard names them: relative to the workflow when they are in it."""
    base = Path(workflow.basedir).resolve()
    names = []
    for path in workflow.configfiles:
        resolved = Path(path).resolve()
        names.append(
            str(resolved.relative_to(base))
            if resolved.is_relative_to(base)
            else str(path)
        )
    return names


def scorecard_outputs():
    # always: a configuration without a published counterpart gets a scorecard that says so (the
    # report's front page links it)
    return [
        "results/scorecard/scorecard.tsv",
        "results/scorecard/scorecard.md",
        "results/scorecard/scorecard.html",
    ]
