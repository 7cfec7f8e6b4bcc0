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

.PHONY: venv course test unit notebooks-test notebooks check-notebooks tiny-model bench teacher-kit clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

course: venv  ## run every notebook on the tiny profile into build/notebooks and print a summary
	$(PY) -m lessons_lib.course run

test: venv  ## unit tests + every notebook executed under nbval
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=30

unit: venv
	$(PY) -m pytest tests -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

notebooks: venv  ## rebuild notebooks/*.ipynb from notebooks/src (badge + setup cell from the template)
	$(PY) -m lessons_lib.scaffold build

check-notebooks: venv
	$(PY) -m lessons_lib.scaffold check

tiny-model: venv  ## rebuild the tiny course model and its adapters (about 15 minutes on 2 CPUs)
	$(PY) -m lessons_lib.tiny build

bench: venv
	$(PY) -m benchmarks.run_all

teacher-kit: venv
	$(PY) -m lessons_lib.quiz teacher-kit --out build/teacher-kit

clean:
	rm -rf build .pytest_cache
