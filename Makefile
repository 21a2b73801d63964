# Quickstart: `make train` (embedded offline data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-fast lint install clean

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
test: $(STAMP)
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=10 $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check mixcut scripts tests train.py

clean:
	rm -rf outputs multirun .pytest_cache
