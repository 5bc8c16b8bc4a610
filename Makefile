# The course in two commands: `make lab` (set up and open the course) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that lies on the course machines; elsewhere pip picks the platform's.
TORCH_SPEC ?= torch==2.13.0
# Test workers, one torch thread each: two workers with two threads apiece on a 2-core
# machine run several times slower than one thread each.
WORKERS ?= 2
TEST_ENV := COURSE_FAST=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup lab test lint check student solutions bench mnist site clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,site]" --config-settings editable_mode=compat
	@touch $(STAMP)

setup: $(STAMP)

# Students work in work/ (git-ignored): seeded from notebooks/, never overwritten.
WORK ?= work
# JupyterLab refuses to start as root (a container's default user) without --allow-root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: setup
	$(PY) -m course_utils.workspace --work-dir $(WORK)
	$(VENV)/bin/jupyter lab --notebook-dir=$(WORK) $(ROOT_FLAG) $(LAB_ARGS)

test: setup lint
	$(PY) -m course_utils.authoring student --check
	$(TEST_ENV) $(PY) -m pytest tests -n $(WORKERS) -q
	$(TEST_ENV) $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider \
		-n $(WORKERS) --dist loadfile -q solutions

# The course as a static website in build/site (from solutions/ and their stored outputs).
site: setup
	$(PY) -m course_utils.site --out build/site

lint: setup
	$(VENV)/bin/ruff check .

check: setup
	@$(PY) -m course_utils.workspace
	@$(PY) -m course_utils.selfcheck $(NB) $(if $(STRICT),--strict)

student: setup
	$(PY) -m course_utils.authoring student $(if $(FORCE),--force)

solutions: setup
	env -u COURSE_FAST $(PY) -m course_utils.authoring execute solutions/[0-9][0-9]_*.ipynb
	$(PY) -m course_utils.authoring student

bench: setup
	$(PY) benchmarks/time_notebooks.py
	$(PY) benchmarks/bench_gmm.py
	$(PY) benchmarks/bench_vae.py
	$(PY) benchmarks/bench_disentangle.py
	$(PY) benchmarks/bench_ssvae.py

mnist: setup
	$(PY) -m course_utils.data download --train-only $(if $(DATA_DIR),--data-dir $(DATA_DIR))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
