"""A job sees only its own interpreter's packages plus src/, not the scheduler's.

Snakemake appends the scheduler's sys.path to every script job's, so a job running under another
interpreter (a conda env, an env module, a container) would silently import what its env lacks from the
scheduler's site-packages. Shown with a real second interpreter: a bare virtual environment (standard
library only) loaded as an environment module (Debian's environment-modules, as on HPC sites), running
script jobs of the real workflow setup (rules/common.smk) with Snakemake's --use-envmodules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.workflow import REPO, SNAKEMAKE

MODULES_INIT = Path("/usr/share/modules/init/bash")

SNAKEFILE = """
configfile: "config/config.yaml"


include: "rules/common.smk"


rule own_packages_only:
    output:
        "own.json",
    envmodules:
        "bare-python",
    script:
        "job_scripts/own.py"


rule missing_package:
    output:
        "missing.txt",
    envmodules:
        "bare-python",
    script:
        "job_scripts/missing.py"


rule without_the_preamble:
    output:
        "leaked.txt",
    envmodules:
        "bare-python",
    script:
        "job_scripts/leaked.py"
"""

SCRIPTS = {
    "own.py": (
        "from mixmil_workflow.workflow import job  # noqa: I001\n"
        "import json, sys\n"
        "json.dump({'executable': sys.executable, 'dropped': job.DROPPED}, open(snakemake.output[0], 'w'))\n"
    ),
    "missing.py": "from mixmil_workflow.workflow import job  # noqa: I001\nimport numpy\n",
    "leaked.py": "import numpy\nopen(snakemake.output[0], 'w').write(numpy.__file__)\n",
}


@pytest.fixture
def workflow(tmp_path):
    if not MODULES_INIT.exists() or shutil.which("modulecmd") is None:
        pytest.skip("environment-modules is not installed (Debian package environment-modules; .ci/run installs it)")
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "bare-python").write_text(f"#%Module1.0\nprepend-path PATH {bare / 'bin'}\n")
    root = tmp_path / "workflow"
    root.mkdir()
    for part in ("rules", "src", "config"):
        shutil.copytree(REPO / part, root / part)
    (root / "Snakefile").write_text(SNAKEFILE)
    (root / "job_scripts").mkdir()
    for name, text in SCRIPTS.items():
        (root / "job_scripts" / name).write_text(text)
    env = {**os.environ, "BASH_ENV": str(MODULES_INIT), "MODULEPATH": str(modules)}
    env.pop("PYTHONPATH", None)

    def run(target: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SNAKEMAKE, "--cores", "1", "--use-envmodules", "--show-failed-logs", target],
            cwd=root, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    return root, bare, run


def test_a_job_under_another_interpreter_sees_its_own_packages_only(workflow):
    root, bare, run = workflow
    # Without the job preamble the scheduler's numpy leaks into a job whose interpreter has none.
    leaked = run("leaked.txt")
    assert leaked.returncode == 0, leaked.stderr[-3000:]
    assert Path((root / "leaked.txt").read_text()).is_relative_to(Path(sys.prefix))

    # With it, the job runs on the second interpreter, with the scheduler's site-packages dropped ...
    own = run("own.json")
    assert own.returncode == 0, own.stderr[-3000:]
    record = json.loads((root / "own.json").read_text())
    assert Path(record["executable"]).parent == bare / "bin"
    site_packages = {str(Path(p).resolve()) for p in record["dropped"]}
    assert any(Path(p).is_relative_to(Path(sys.prefix).resolve()) for p in site_packages), record

    # ... and a package its environment lacks is one error naming the package and the fix.
    missing = run("missing.txt")
    assert missing.returncode != 0
    output = missing.stdout + missing.stderr
    assert "package 'numpy' is not installed in this job's environment" in output, output[-3000:]
    assert "Add 'numpy' to the rule's conda env" in output
