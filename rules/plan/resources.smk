# Resources and groups of the rules on a cluster (the cost model: src/mixmil_workflow/workflow/resources.py).


# What a cluster is asked for: rules give estimates, the config's resources section scales them.
SCALING = Scaling.from_config(config["resources"])


def runtime_minutes(minutes):
    """A rule's runtime: its estimate (minutes) x resources.runtime_scale, more on each retry."""
    return lambda wildcards, attempt: SCALING.runtime(minutes, attempt)


def memory_mb(base_mb, per_input_mb=0):
    """A rule's mem_mb: a base plus per_input_mb per MB of its input, more on each retry."""
    if per_input_mb:
        return lambda wildcards, input, attempt: SCALING.memory(
            base_mb + per_input_mb * input.size_mb, attempt
        )
    return lambda wildcards, attempt: SCALING.memory(base_mb, attempt)


def cluster_group(group):
    """A rule's group (a name, or a function of the wildcards giving a name or None), active when the
    profile sets group-components (profiles/slurm): Snakemake ignores groups when it runs jobs locally, but
    a local dry run would still list the jobs as group jobs."""
    return lambda wildcards: (
        (group(wildcards) if callable(group) else group)
        if workflow.group_settings.group_components
        else None
    )
