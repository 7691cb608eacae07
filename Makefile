# Two commands matter: `make lab` opens the course, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the pins or the package metadata change.
STAMP := $(VENV)/.installed-stamp
# The environment notebooks are executed and tested in: warnings are errors.
NB_ENV := PYTHONWARNINGS=error::UserWarning,error::FutureWarning MPLBACKEND=module://matplotlib_inline.backend_inline

# `make execute NOTEBOOKS=notebooks/01_padding_motivation.ipynb` refreshes one lesson.
NOTEBOOKS ?= notebooks/*.ipynb

.PHONY: lab test lint unit execute images bench html screenshots

$(STAMP): requirements.txt pyproject.toml tools/page_config.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " at $(PYTHON); set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	# The course is offline: no "Jupyter news" prompt or update checks.
	mkdir -p $(VENV)/etc/jupyter/labconfig && cp tools/page_config.json $(VENV)/etc/jupyter/labconfig/
	touch $@

# Rooted at the repository so notebooks can show ../images; opens lesson 00.
# JupyterLab refuses to run as root (containers often do) unless told so.
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir=. \
		--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb

test: lint
	$(NB_ENV) $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/pytest tests

execute: $(STAMP)
	$(NB_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.record_timing=False \
		--ExecutePreprocessor.timeout=120 $(NOTEBOOKS)
	$(BIN)/python tools/normalize_notebooks.py $(NOTEBOOKS)

images: $(STAMP)
	$(BIN)/python images/make_images.py

# Every benchmark runs and prints its table; the target fails if any missed its goal.
BENCHMARKS := benchmarks/train_reverse.py benchmarks/decoding.py benchmarks/notebook_times.py
bench: $(STAMP)
	@status=0; for benchmark in $(BENCHMARKS); do \
		echo "== $$benchmark"; $(NB_ENV) $(BIN)/python $$benchmark || status=1; echo; \
	done; exit $$status

# A static site of the stored notebooks in site/, working offline (needs npm once).
html: $(STAMP)
	$(BIN)/python tools/build_site.py site

# The README's widget screenshots, taken by the browser test (needs Chromium).
screenshots: $(STAMP)
	COURSE_SCREENSHOTS=images/screenshots $(BIN)/pytest tests/test_browser.py
