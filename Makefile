# Two entry points that do all set-up on a fresh machine:
#   make demo   creates .venv, installs hepavol, runs `hepavol demo`
#   make test   creates .venv, installs hepavol with its test tools and the Debian packages the tests use,
#               then runs ruff, mypy and the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages used by the tests (reference tools, validators, servers). Installed with apt-get as root.
APT_PACKAGES ?= openjdk-17-jdk-headless r-base-core r-cran-survival r-cran-proc r-cran-psych r-cran-vcd chromium dicom3tools dcmtk pixelmed-apps orthanc orthanc-dicomweb postgresql
PYTEST_ARGS ?=
# OHIF Viewer releases for tests/test_ohif_viewer.py (npm @ohif/app: the current one and the previous minor's
# latest), unpacked into a cache outside git (scripts/fetch-ohif.sh; skipped with a warning when npm is missing).
OHIF_VERSIONS ?= 3.13.2 3.12.10
HEPAVOL_OHIF_CACHE ?= $(HOME)/.cache/hepavol/ohif

.PHONY: demo test lint typecheck pytest system-deps postgres ohif benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# pyradiomics 3.0.1: reference values for the diameter tests only (not a dependency); builds without isolation.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet numpy setuptools wheel versioneer && $(BIN)/python -m pip install --quiet --no-build-isolation pyradiomics==3.0.1
	touch $@ $(VENV)/.installed

system-deps:
	@bash scripts/install-system-deps.sh $(APT_PACKAGES)

demo: $(VENV)/.installed
	$(BIN)/hepavol demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# A PostgreSQL server on loopback for the storage tests (they run against SQLite and PostgreSQL).
HEPAVOL_TEST_POSTGRES ?= postgresql://hepavol_test:hepavol_test@127.0.0.1:5432/postgres
postgres: system-deps
	@bash scripts/start-postgres.sh

ohif:
	@bash scripts/fetch-ohif.sh $(HEPAVOL_OHIF_CACHE) $(OHIF_VERSIONS)

pytest: $(VENV)/.installed-test system-deps postgres ohif
	HEPAVOL_TEST_POSTGRES=$(HEPAVOL_TEST_POSTGRES) HEPAVOL_REQUIRE_POSTGRES=1 HEPAVOL_OHIF_CACHE=$(HEPAVOL_OHIF_CACHE) $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

benchmark: $(VENV)/.installed-test
	$(BIN)/python benchmarks/measure.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/segment.py
	$(BIN)/python benchmarks/study.py
	$(BIN)/python benchmarks/pacs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
