# The commands a reader types. Every target is idempotent: the environment is built once and
# rebuilt only when pyproject.toml or constraints.txt change.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pip arguments, e.g. PIP_ARGS="--extra-index-url <PyTorch's CPU wheel index>" on a laptop.
PIP_ARGS ?=
# Seconds a single notebook cell may run under nbval before the test fails.
CELL_TIMEOUT ?= 300
# Run only some notebooks: make test-notebooks NB=notebooks/01_why_transformers.py
ALL_NB := $(sort $(wildcard notebooks/[0-9][0-9]_*.py))
NB ?= $(ALL_NB)
# Threads per notebook kernel: the chapters' models are tiny, and one thread avoids the large
# slow-downs of threads waiting on each other when the machine is busy.
NB_THREADS ?= 1
# Parallel workers for the unit tests.
WORKERS ?= 2

export PYTHONHASHSEED := 0
export MPLBACKEND := Agg
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help env lab test test-unit test-kernels test-notebooks test-student test-book \
        book student sync clean

help:
	@echo "make lab      create .venv if needed, pair the notebooks, open JupyterLab on notebooks/"
	@echo "make test     create or update .venv, then run every test (unit, kernels, notebooks, student, book)"
	@echo "make book     build the executed static site into _build/html (cached execution)"
	@echo "make student  write student/NN_slug.ipynb: solutions stubbed, outputs cleared"
	@echo "make sync     pair every notebooks/NN_slug.py with its .ipynb (jupytext)"
	@echo "make test-notebooks NB=notebooks/01_why_transformers.py   run one chapter as a test"

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 10) else "Python >= 3.10 is needed, this is %d.%d; set PYTHON=python3.X" % v[:2])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q $(PIP_ARGS) -c constraints.txt -e '.[test,book]'
	@touch $@

sync: $(STAMP)
	$(BIN)/python tools/sync_notebooks.py

lab: sync
	$(BIN)/jupyter lab --notebook-dir=notebooks

test: $(STAMP)
	$(MAKE) --no-print-directory test-unit test-kernels test-notebooks test-student test-book

# Unit tests, plus the JupyterLab and packaging tests that a bare `pytest` leaves out (pyproject.toml).
test-unit: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) -m "not kernels and not book and not student" --timeout=900 tests

test-kernels: $(STAMP)
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -m kernels --timeout=900 tests

# A passing notebook leaves its executed copy in _build/executed (tools/nbreport.py), which the book
# test builds from. Old copies go first (all of them for the full set, else those of NB), so that a
# failed or partial run never leaves an earlier run's outputs behind; tools/build_book.py also
# refuses copies older than their chapter, the library or data/.
test-notebooks: $(STAMP)
	$(if $(filter-out $(abspath $(NB)),$(abspath $(ALL_NB))),rm -f $(addprefix _build/executed/,$(notdir $(NB:.py=.ipynb))),rm -rf _build/executed)
	$(BIN)/python tools/sync_notebooks.py $(NB)
	PYTHONPATH=tools/offline_site ROADMAP_OFFLINE=1 OMP_NUM_THREADS=$(NB_THREADS) \
	$(BIN)/python -m pytest -p tools.nbreport --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=$(CELL_TIMEOUT) -o testpaths= -o addopts= $(NB:.py=.ipynb)

test-student: student
	$(BIN)/python -m pytest -m student -o addopts= tests/test_student.py

test-book: $(STAMP)
	$(BIN)/python -m pytest -m book -o addopts= tests/test_book.py

book: $(STAMP)
	$(BIN)/python tools/build_book.py --execute

student: $(STAMP)
	$(BIN)/python tools/make_student.py notebooks student

clean:
	rm -rf _build student .jupyter_cache .pytest_cache notebooks/*.ipynb
