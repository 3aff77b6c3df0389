# simcomm — the two commands a newcomer needs are `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: lab test lint bench demo venv clean

# (Re)install when pyproject.toml changes; creating the venv only if missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,dev]'
	touch $(STAMP)

venv: $(STAMP)

# JupyterLab refuses to run as root unless told; on a normal account no flag is added.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: venv
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00-tour.ipynb

lint: venv
	$(BIN)/ruff check simcomm tests benchmarks docs tools

test: lint
	$(BIN)/python -m pytest -n 2 --nbmake tests notebooks

bench: venv
	$(BIN)/python benchmarks/run_all.py

demo: venv
	$(BIN)/simcomm run chain --seed 1 --until 600 --out demo-report
	@echo "report written to demo-report/"

clean:
	rm -rf $(VENV) demo-report test-artefacts .pytest_cache .hypothesis
