# The two commands of the README: `make run` (demo workflow end to end) and `make test` (all tests).
# Both create or update the pinned environment in $(VENV) first; re-running is a no-op when
# pyproject.toml has not changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# GPUs on this machine: training jobs declare gpu=1, so at most GPUS of them run at once. With no GPU
# (0) Snakemake caps the request to 0 and the jobs run side by side on the CPU.
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)

.PHONY: env system-deps scatter run test test-fast lint format report clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# PLINK 1.9 and bcftools (genetics branch) are Debian packages, not pip ones: install them when missing.
system-deps:
	@{ command -v plink1.9 >/dev/null || command -v plink >/dev/null; } && command -v bcftools >/dev/null || { \
	  echo "installing PLINK 1.9 and bcftools (Debian packages plink1.9 bcftools) for the genetics branch"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends plink1.9 bcftools; }

# The optional [scatter] extra (MixMIL's segment_backend: scatter): torch-scatter has no wheel for this torch
# on PyPI, so it is built against the installed one (about 9 min on 2 cores; needs a C++ compiler). Without
# it the tests of that backend are skipped.
scatter: env
	$(BIN)/python -c "import torch_scatter" 2>/dev/null || \
	  FORCE_CUDA=0 $(BIN)/python -m pip install --quiet --no-build-isolation "torch-scatter==2.1.2"

run: env system-deps
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(or $(GPUS),0) --configfile config/config.yaml

test: env system-deps
	$(BIN)/python -m pytest

test-fast: env
	$(BIN)/python -m pytest -m "not slow"

lint: env
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/ruff format --check src scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

format: env
	$(BIN)/ruff check --fix src scripts tests benchmarks
	$(BIN)/ruff format src scripts tests benchmarks
	$(BIN)/snakefmt Snakefile rules

report: env
	$(BIN)/snakemake --report report.html

clean:
	rm -rf results logs .snakemake report.html
