# simcomm — the two commands a newcomer needs are `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: lab test lint bench demo venv clean pythons lite assignments

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
	$(BIN)/mypy simcomm

test: lint
	$(BIN)/python -m pytest -n 2 --nbmake tests notebooks

# The course as a static JupyterLite site in build/lite/: JupyterLab and Python (Pyodide)
# run in the learner's browser; serve the folder with any static web server (README).
lite: venv
	$(BIN)/python tools/build_lite.py --output build/lite

# The course as an nbgrader course in build/assignments/: sources, student versions
# (nbgrader generate_assignment) and an answer key; see tools/assignments.py.
assignments: venv
	$(BIN)/python tools/assignments.py

bench: venv
	$(BIN)/python benchmarks/run_all.py

demo: venv
	$(BIN)/simcomm run chain --seed 1 --until 600 --out demo-report
	@echo "report written to demo-report/"

# The unit tests (not the notebooks, nor anything driving Chromium) under each Python in PYTHONS,
# each in its own venv: the versions the README names are the ones run here.
PYTHONS ?= python3.10 python3.12 python3.13
pythons:
	@for py in $(PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1; \
	  echo "== Python $$v"; \
	  test -x .venv-$$v/bin/python || $$py -m venv .venv-$$v || exit 1; \
	  .venv-$$v/bin/python -m pip install --quiet -e '.[dev]' || exit 1; \
	  .venv-$$v/bin/python -m pytest -q -n 2 -p no:cacheprovider tests \
	    -m "not browser" || exit 1; \
	done

clean:
	rm -rf $(VENV) .venv-3.* demo-report test-artefacts .pytest_cache .hypothesis \
	  build/lite build/lite-wheels
