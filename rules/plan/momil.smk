# The plan of the momil branch (rules/momil.smk): its settings, runs, seeds, targets and input functions.


MOMIL = config["momil"]
MOMIL_REPEATS = list(range(MOMIL["n_repeats"]))


def momil_similarity_table():
    """The optional task-similarity table of MoMIL's selection as a list of inputs; a relative path is
    relative to the workflow directory (like the source sheets)."""
    path = MOMIL["selection"].get("similarity_table")
    return [str(Path(workflow.basedir) / path)] if path else []


def momil_outputs():
    if not MOMIL["activate"]:
        return []
    return ["results/momil/tables/momil_simulation.md"]
