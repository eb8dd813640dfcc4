"""Download the wheels a lent GPU machine needs to run benchmarks/gpu_session.sh's model tests.

The lent machines run their own image (Python 3.12 with torch, numba, scipy, scikit-learn, no network):
xgboost and jsonschema are missing from it, and its scikit-learn is not this project's. This fetches, at
the versions installed here, the wheels of those distributions for that machine into .whl/ (ignored by
git), which the run tool carries (`carry: [.whl]`) and gpu_session.sh installs under /tmp/site.

    python benchmarks/gpu_wheels.py              # into .whl/
    python benchmarks/gpu_wheels.py --dest /tmp/w

xgboost comes as `xgboost-cpu` (the same library without its CUDA build, a twentieth of the size): the
trees are CPU models in this project, and the machine's transfer limit is 64 MiB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# distribution installed here -> distribution to fetch for the lent machine
DISTRIBUTIONS = {
    "xgboost": "xgboost-cpu",
    "scikit-learn": "scikit-learn",
    "jsonschema": "jsonschema",
    "jsonschema-specifications": "jsonschema-specifications",
    "referencing": "referencing",
    "rpds-py": "rpds-py",
}
# the lent machine's interpreter and platform (its documentation: Python 3.12 on x86-64 Linux)
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
LIMIT_MB = 48  # of the 64 MiB a lent machine's working tree may carry, the rest for the checkout


def requirements() -> list[str]:
    """``name==version`` of every wheel to fetch, at the versions of this environment."""
    return [f"{target}=={version(installed)}" for installed, target in DISTRIBUTIONS.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *TARGET, *platforms, "-d", str(args.dest)]
    subprocess.run([*command, *requirements()], check=True)
    wheels = sorted(args.dest.glob("*.whl"))
    size_mb = sum(w.stat().st_size for w in wheels) / 2**20
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:6.1f} MB  {wheel.name}")
    if size_mb > LIMIT_MB:
        sys.exit(f"{args.dest}: {size_mb:.0f} MB of wheels, more than {LIMIT_MB} MB; remove the ones not listed above")
    print(f"{size_mb:.1f} MB in {args.dest}: carry it to the lent machine (run tool: carry [.whl])")


if __name__ == "__main__":
    main()
