# Everything a fresh machine needs: `make demo` and `make test` create the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint typecheck pytest eval bench gpu-wheels gpu-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build first: a bare `torch` requirement would pull several GB of CUDA wheels.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python examples/demo.py

lint: install
	$(BIN)/ruff check store index encoders migrations integrations distributed tests examples tools bench
	$(BIN)/ruff format --check store index encoders migrations integrations distributed tests examples tools bench

typecheck: install
	$(BIN)/python tools/devfarm.py
	$(BIN)/mypy -p latestore

pytest: install
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

test: lint typecheck pytest

eval: install
	$(BIN)/python examples/evaluate_scifact.py

bench: install
	$(BIN)/python -m bench.run

# The GPU check runs on a CUDA machine with python3, torch and triton (no virtualenv):
# `make gpu-wheels` here, then `make gpu-check` there (or tools/gpu_check.sh directly).
gpu-wheels:
	bash tools/gpu_wheels.sh

gpu-check:
	bash tools/gpu_check.sh

clean:
	rm -rf $(VENV) .dev build *.egg-info .pytest_cache .mypy_cache .ruff_cache
