# Two commands matter: `make lab` opens the course, `make test` runs every check.
# The course runs on Python 3.11, 3.12 and 3.13: 3.11 when it is there, else the newest of
# 3.13 and 3.12, else python3. Each candidate must really run (a pyenv shim may not).
SUPPORTED := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,python3.11 python3.13 python3.12 python3,\
	$(shell $(p) -c '$(SUPPORTED)' 2>/dev/null && command -v $(p))) python3)
endif
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the pins or the package metadata change.
STAMP := $(VENV)/.installed-stamp
# The environment notebooks are executed and tested in: warnings are errors.
NB_ENV := COURSE_CLASSROOM=0 PYTHONWARNINGS=error::UserWarning,error::FutureWarning MPLBACKEND=module://matplotlib_inline.backend_inline

# `make execute NOTEBOOKS=notebooks/01_padding_motivation.ipynb` refreshes one lesson.
NOTEBOOKS ?= notebooks/*.ipynb

.PHONY: lab reset test lint unit portable execute images bench html screenshots

$(STAMP): requirements.txt pyproject.toml tools/page_config.json tools/default_setting_overrides.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "Python 3.11, 3.12 or 3.13 is required, found " + sys.version.split()[0] + " at $(PYTHON); set PYTHON=/path/to/python3.12 (for example)")'
	@test ! -x $(BIN)/python || $(BIN)/python -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v <= (3, 13) else "$(VENV) was made with Python %d.%d: delete it and run make again" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	# The course is offline: no "Jupyter news" prompt or update checks. For the slides
	# (tools/default_setting_overrides.json): a notebook does not scroll past its end (else a
	# slide loses its top lines); the execution count is shown (else an invisible overlay
	# covers the left of each output and takes the clicks meant for an explorer's first
	# control); a figure is at most the screen's height less 300 px, so it fits with its code.
	mkdir -p $(VENV)/etc/jupyter/labconfig
	cp tools/page_config.json tools/default_setting_overrides.json $(VENV)/etc/jupyter/labconfig/
	touch $@

# The learner works in my-notebooks/ (git-ignored copies, made on first use), never in the
# tested notebooks/. Rooted at the repository so lessons can show ../images; opens lesson 00.
# JupyterLab refuses to run as root (containers often do) unless told so.
lab: $(STAMP)
	@$(BIN)/python tools/learner_copy.py sync
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir=. \
		--LabApp.default_url=/lab/tree/my-notebooks/00_start_here.ipynb

# `make reset LESSON=05` puts your copy of lesson 05 back as it was (LESSON=all: every one);
# the replaced copy is kept in my-notebooks/.backup/.
reset: $(STAMP)
	@$(BIN)/python tools/learner_copy.py reset $(LESSON)

test: lint
	$(NB_ENV) $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/pytest tests

# Every notebook under strict nbval again, with other vector units and thread counts
# (tools/portability.py says how): the stored outputs must not depend on the machine.
portable: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/portability.py $(NOTEBOOKS)

execute: $(STAMP)
	$(NB_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.record_timing=False \
		--ExecutePreprocessor.timeout=120 $(NOTEBOOKS)
	$(BIN)/python -m tools.normalize_notebooks $(NOTEBOOKS)

images: $(STAMP)
	$(BIN)/python images/make_images.py

# Every benchmark runs and prints its table; the target fails if any missed its goal.
BENCHMARKS := benchmarks/train_reverse.py benchmarks/decoding.py benchmarks/packing.py \
	benchmarks/notebook_times.py
bench: $(STAMP)
	@status=0; for benchmark in $(BENCHMARKS); do \
		echo "== $$benchmark"; $(NB_ENV) $(BIN)/python $$benchmark || status=1; echo; \
	done; exit $$status

# A static site of the stored notebooks in site/, working offline (needs npm once).
html: $(STAMP)
	$(BIN)/python -m tools.build_site site

# The README's screenshots, taken by the browser tests (needs Chromium, and npm for the site).
screenshots: $(STAMP)
	COURSE_SCREENSHOTS=images/screenshots $(BIN)/pytest tests/test_browser.py tests/test_site.py
