# Quickstart: `make train` (embedded offline data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-fast test-min gpu-check lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) train.py $(ARGS)

# --durations: the slowest tests are listed with every run, so the budget (make test <= 8 min, test-fast <= 2 min
# on 2 cores) stays visible.
# -n 2: two pytest-xdist workers, one torch thread each (most of the suite is process launches and small
# CPU steps; two single-threaded workers keep both cores busy without oversubscribing them).
test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -n $${PYTEST_WORKERS:-2} --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=10 $(PYTEST_ARGS)

# The fast suite on the oldest versions pyproject.toml promises: scripts/dev/min_versions.py turns every
# `name>=X` into `name==X`, installed into their own venv (torch from the package index: a CUDA build, several GB).
MIN_VENV ?= .venv-min
test-min:
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(PYTHON) scripts/dev/min_versions.py > $(MIN_VENV)/min.txt
	$(MIN_VENV)/bin/python -m pip install --quiet -c $(MIN_VENV)/min.txt -e ".[dev]"
	OMP_NUM_THREADS=1 $(MIN_VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

# On a machine with a CUDA GPU: scripts/gpu_check.sh (at most ~10 minutes), report in $(OUT).
OUT ?= outputs/gpu_check
gpu-check: $(STAMP)
	PYTHON=$(PY) bash scripts/gpu_check.sh $(OUT)

lint: $(STAMP)
	$(PY) -m ruff check mixcut scripts tests train.py

clean:
	rm -rf outputs multirun .pytest_cache
