# The commands a reader types. The stages are defined once, in make.py (standard library only, so
# that Windows readers without make run the same thing with `py make.py lab`); each target here runs
# `python make.py <target>`, and tests/test_tools.py checks that both list the same stages.
# Every target is idempotent: the environment is built once and rebuilt only when pyproject.toml or
# constraints.txt change.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The interpreter that creates .venv: make lab PYTHON=python3.12
PYTHON ?= python3
# Settings read by make.py, passed on when given (make test-notebooks NB=notebooks/01_why_transformers.py):
# VENV, PIP_ARGS, TORCH (=cpu for PyTorch's CPU build), NB, CELL_TIMEOUT, NB_THREADS, NB_WORKERS, WORKERS,
# SUBMISSIONS and CHAPTER (make grade).
export VENV PIP_ARGS TORCH NB CELL_TIMEOUT NB_THREADS NB_WORKERS WORKERS SUBMISSIONS CHAPTER

STAGES := env sync lab test test-unit test-kernels test-notebooks test-student test-book book student grade clean

.PHONY: help $(STAGES)

help:
	@$(PYTHON) make.py --help

$(STAGES):
	@$(PYTHON) make.py $@
