# The plan of the costs branch (rules/costs.smk): its settings, runs, seeds, targets and input functions.


COSTS = config["costs"]
COST_MODELS = cost_models(COSTS, config["models"], SIMULATION_MODELS)


def cost_outputs():
    if not COST_MODELS:
        return []
    return ["results/costs/table1_costs.tsv", "results/costs/table1_costs.md"]
