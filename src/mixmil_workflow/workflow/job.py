"""The job preamble of every workflow script: a job sees its own interpreter's packages plus ``src/``.

Snakemake's script preamble appends the scheduler's whole ``sys.path`` to the job's (it needs the
``snakemake`` package to unpickle the job's inputs), so a job running in a conda env (or an env module)
would silently import any package its env lacks from the scheduler's site-packages, and an env under
``envs/`` missing a package would go unnoticed. Every script imports this module first: it drops the
scheduler's paths that are not the job interpreter's own, after Snakemake's preamble ran and before the
script imports anything else, and turns an import that only the scheduler could have served into one
error naming the package and the fix. Under the scheduler's own interpreter (the pip route) nothing
changes. Standard library only: it runs before any package of the env is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import site
import sys
import sysconfig

SCHEDULER_PATH = "MIXMIL_SCHEDULER_PATH"  # set by the workflow (rules/common.smk) for every job


def _norm(path: str) -> str:
    return os.path.normcase(os.path.realpath(path or os.curdir))


def own_paths() -> set[str]:
    """The job interpreter's own import paths: its standard library and site-packages, PYTHONPATH (src/) and
    the script's folder."""
    paths = [sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    paths += site.getsitepackages() + [site.getusersitepackages()]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # The standard library's extension modules live under the base interpreter; in a venv sysconfig's
    # platstdlib names the venv's own lib folder, which has no lib-dynload.
    paths += [os.path.join(sys.base_prefix, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}",
                           "lib-dynload")]  # fmt: skip
    if sys.path:
        paths.append(sys.path[0])
    return {_norm(p) for p in paths}


class SchedulerOnlyPackage(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: an import nothing else found, that the scheduler's paths hold, fails
    naming the package and the fix instead of a bare ModuleNotFoundError."""

    def __init__(self, dropped: list[str]):
        self.dropped = dropped

    def find_spec(self, name, path=None, target=None):
        if path is not None:  # submodules are found through their package
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, self.dropped)
        if spec is None:
            return None
        raise ModuleNotFoundError(
            f"package {name!r} is not installed in this job's environment (interpreter {sys.executable}); the "
            f"scheduler's environment has it, but a job sees only its own. Add {name!r} to the rule's conda env "
            "under envs/ (or to the env module / container the job runs in).",
            name=name,
        )


def isolate() -> list[str]:
    """Drop the scheduler's import paths that are not this interpreter's own; returns the dropped paths."""
    scheduler = {_norm(p) for p in os.environ.get(SCHEDULER_PATH, "").split(os.pathsep) if p}
    if not scheduler:
        return []  # not run by the workflow (e.g. a script run by hand): nothing to do
    own = own_paths()
    dropped = [p for p in sys.path if _norm(p) in scheduler and _norm(p) not in own]
    if dropped:
        sys.path[:] = [p for p in sys.path if p not in dropped]
        sys.path_importer_cache.clear()
        sys.meta_path.append(SchedulerOnlyPackage(dropped))
    return dropped


DROPPED = isolate()
