# LoRA Adapter Lab. `make course` runs every lesson on the tiny profile; `make test` runs all tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export LESSONS_PROFILE ?= tiny
# One torch thread per process: the tiny model gains little from more, and test workers run side by side.
export OMP_NUM_THREADS ?= 1
TEST_WORKERS ?= 2
# Installs are pinned: `make venv` (and so CI) installs the exact versions in $(LOCK) with `pip install -c`;
# requirements*.txt keep the version ranges Colab installs from. `make test-latest` runs the unit suite in
# $(LATEST_VENV) on the newest releases those ranges allow; `make lock VENV=$(LATEST_VENV)` then moves the pins
# there (plain `make lock` pins what .venv has). Change a range, then relock: `make venv` fails on a stale lock.
LOCK ?= requirements-lock.txt
LATEST_VENV ?= .venv-latest
LATEST_PY := $(LATEST_VENV)/bin/python

.PHONY: venv course test unit lint notebooks-test notebooks check-notebooks tiny-model bench teacher-kit clean \
	chromium lock test-latest rehearse gpu-check

# --no-compile: pip would byte-compile all ~17,700 modules it installs (~80 s on 2 CPUs); Python compiles the ones a
# run imports on first import and keeps them (~20 s). Not where PYTHONDONTWRITEBYTECODE is set (as on our CI
# machines): every process would compile each module again (the rehearsal took 405 s -> 580 s), so it is unset here.
unexport PYTHONDONTWRITEBYTECODE
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --no-compile -c $(LOCK) "$(TORCH_SPEC)"
	$(PY) -m pip install -q --no-compile -c $(LOCK) -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Two notebooks side by side, one CPU each (OMP_NUM_THREADS=1): on 2 CPUs the course takes about half the time.
COURSE_JOBS ?= 2
course: venv  ## run every notebook on the tiny profile into build/notebooks and print a summary
	$(PY) -m lessons_lib.course run --jobs $(COURSE_JOBS)

chromium:  ## Debian's Chromium for the browser test: installed if missing (as root, apt-get), else says how
	@bash tools/ensure_chromium.sh

lint: venv  ## ruff: the rules in pyproject.toml, and the layout `ruff format` writes
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

test: venv chromium lint  ## lint, unit tests + every notebook executed under nbval
	$(PY) -m pytest tests notebooks --ignore=notebooks/ru --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=30

unit: venv chromium lint  ## unit tests only (whole-notebook runs are left to `make test`, which runs the notebooks)
	$(PY) -m pytest tests -m "not notebook_run" -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

lock:  ## rewrite $(LOCK) from the packages installed in $(VENV) (torch and this project left out)
	$(PY) tools/lock.py $(LOCK)
	@if [ -f $(VENV)/.installed ]; then touch $(VENV)/.installed; fi

test-latest: chromium  ## the unit suite in $(LATEST_VENV) on the newest releases requirements*.txt allow (no lock)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_PY) -m pip install -q --upgrade pip
	echo "$(TORCH_SPEC)" > $(LATEST_VENV)/torch-constraint.txt
	$(LATEST_PY) -m pip install -q --upgrade --upgrade-strategy eager -c $(LATEST_VENV)/torch-constraint.txt \
		"$(TORCH_SPEC)" -r requirements.txt -r requirements-dev.txt
	$(LATEST_PY) -m pip install -q --no-deps -e .
	$(LATEST_PY) -m pytest tests -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# The GPU path without a GPU: every notebook alone, in a fresh empty work dir, on t4-rehearsal (English edition) and
# 7b-rehearsal (Russian edition) (4-bit NF4 + fp16 + the real chat templates on the tiny weights). Its last line:
# `rehearsal: <ok>/<total> ...`.
REHEARSE_JOBS ?= 2
rehearse: venv  ## every notebook standalone on both rehearsal profiles (CI runs it)
	$(PY) -m lessons_lib.rehearse --jobs $(REHEARSE_JOBS)

# On a GPU machine: both rehearsals with the tiny weights on real CUDA 4-bit kernels (no download needed): t4 in fp16
# as on a T4, 7b (the Russian edition) in bf16 where the GPU has it (compute capability 8.0 and up).
# GPU_PY: a Python that has torch with CUDA and the requirements (a GPU box may have no network for a venv).
GPU_PY ?= python3
GPU_JOBS ?= 2
gpu-check:  ## every notebook on CUDA with the t4 and 7b code paths and the tiny weights; one summary line
	$(GPU_PY) -m lessons_lib.rehearse --profiles t4-rehearsal 7b-rehearsal --require-cuda --jobs $(GPU_JOBS) --timeout 240

# `make notebooks REPO=owner/name BRANCH=x` points the badges and clone cell at a fork and records it in
# pyproject.toml ([tool.lessons_lib]); only values given on the command line count, never the environment's.
FORK_ARGS = $(if $(filter command line,$(origin REPO)),--repo $(REPO)) \
	$(if $(filter command line,$(origin BRANCH)),--branch $(BRANCH))

notebooks: venv  ## rebuild notebooks/*.ipynb from notebooks/src (badge + setup cell from the template), README badges
	$(PY) -m lessons_lib.scaffold build $(FORK_ARGS)

check-notebooks: venv
	$(PY) -m lessons_lib.scaffold check

# Two threads for every step of the build (the make-wide default is one): two train 1.8x faster, and on torch 2.13 CPU
# the weights do not depend on the count (the base's first 300 steps are bit for bit the same with one or two; course
# adapters, router and tool adapter rebuilt with two equal the shipped files, which were trained with one or two).
tiny-model: export OMP_NUM_THREADS = 2
tiny-model: venv  ## rebuild the tiny base (two stages, ~51 min), course adapters, router, tool adapter (~34 min)
	$(PY) -m lessons_lib.tiny build
	$(PY) -m lessons_lib.router train
	$(PY) -m lessons_lib.tools build-adapter  # also scores the hand-written figures natural_eval would

bench: venv
	$(PY) -m benchmarks.run_all

teacher-kit: venv
	$(PY) -m lessons_lib.quiz teacher-kit --out build/teacher-kit

clean:
	rm -rf build .pytest_cache

# The copy probe (made-up names the base must repeat) and the hand-written natural sets, on the shipped model or
# on a candidate: `make copy-probe MODEL=build/tiny-model-v2/ckpt-001000`, `make natural-eval ADAPTERS="..."`.
.PHONY: copy-probe natural-eval
MODEL ?= assets/tiny-model
ADAPTERS ?= assets/adapters/json assets/adapters/support assets/adapters/coding
copy-probe: venv
	$(PY) -m lessons_lib.tiny.probe $(MODEL) --loss

natural-eval: venv
	$(PY) -m lessons_lib.natural_eval --base $(MODEL) --adapters $(ADAPTERS)
