# The two commands of the README:
#   make demo   - set up (venv + install) and run the demo benchmark end to end (Snakemake)
#   make test   - set up and run the test suite (what CI runs)
# Other targets: make test-fast (the quick subset: no workflow runs, benchmarks or real data), make test-isa
# (the numeric tests with torch's CPU kernels capped at AVX2, as on an x86-64 CPU without AVX-512), make smoke
# (the whole DAG in a few minutes), make dvc-demo (the same DAG through `dvc repro`), make report
# (Snakemake's browsable report of a finished run: report.zip), make bench (stage costs on this machine),
# make clean (pipeline outputs).

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= demo
# MODELS: a subset of the profile's experiment.models, e.g. make smoke MODELS="dcgan fastgan" (empty: all of them)
MODELS ?=
CORES ?= 8
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: setup demo smoke dvc-demo report test test-fast test-isa bench clean browser-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --progress-bar off -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	fewgan params --profile $(PROFILE) $(if $(strip $(MODELS)),--models $(MODELS))
	fewgan preload -- snakemake --cores $(CORES) all
	@echo "report: reports/benchmark/index.html (and README.md)"

smoke:
	$(MAKE) demo PROFILE=smoke

dvc-demo: setup
	fewgan params --profile $(PROFILE) $(if $(strip $(MODELS)),--models $(MODELS))
	fewgan preload -- dvc repro

report: setup
	snakemake --report report.zip
	@echo "report.zip: unzip it and open report/report.html"

# two pytest-xdist workers (one torch thread each on 2 cores: tests/conftest.py), whole modules per worker
# (loadfile: a module's fixtures, runs and docs/RELIABILITY.md stay in one process), the slowest modules first
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -ge 2 ] && echo 2 || echo 1)
test: setup browser-deps
	pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --timeout 1500 --durations=25

# the report's browser test (tests/report/test_browser.py) renders the report in Debian's headless chromium; where it
# cannot be installed (not root, no apt, no network) that test skips and says why. Never fails the target.
browser-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromedriver >/dev/null; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
	    || echo "chromium not installed: the report's browser test will skip" >&2; \
	fi

# a developer's quick subset (< 3 min on 2 cores): no end-to-end workflow runs, no benchmarks, no real data
test-fast: setup
	pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --timeout 600 -m "not slow and not shared_data"

# the numeric tests (metrics, models, train, invert, face alignment) as an x86-64 CPU without AVX-512 runs them:
# ATen's kernels (ATEN_CPU_CAPABILITY) and oneDNN's (ONEDNN_MAX_CPU_ISA) capped at AVX2, in every process the
# tests start too. They must pass there as on AVX-512/AMX machines: a tolerance follows from the precision a
# value was stored at, never from one CPU's kernels. tests/check_isa.py fails when the caps did not take effect.
ISA_TESTS ?= tests/metrics tests/models tests/train tests/invert tests/data/test_align.py
test-isa: export ATEN_CPU_CAPABILITY := avx2
test-isa: export ONEDNN_MAX_CPU_ISA := AVX2
test-isa: setup
	python tests/check_isa.py
	pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --timeout 1500 $(ISA_TESTS)

bench: setup
	fewgan bench

clean:
	rm -rf data runs work reports/benchmark .snakemake dvc_plots report.zip
