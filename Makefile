# Everything a fresh machine needs: `make demo` and `make test` create the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGE_DIRS := core store cli ingest index encoders integrations migrations
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint typecheck pytest eval bench gpu-wheels gpu-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build first: a bare `torch` requirement would pull several GB of CUDA wheels.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]" --config-settings editable_mode=strict
	touch $(STAMP)

# editable_mode=strict installs a tree of links to the mapped folders, so mypy and
# other tools see a plain `latestore` package; a module added or removed since needs
# the tree linked again, which this does whenever the set of files changes.
MODULES := $(shell find $(PACKAGE_DIRS) -name '*.py' -o -name '*.ini' -o -name '*.mako' -o -name 'py.typed' 2>/dev/null | sort | cksum | cut -d' ' -f1)
LINKED := $(VENV)/.linked-$(MODULES)

$(LINKED): $(STAMP)
	rm -f $(VENV)/.linked-*
	$(BIN)/python -m pip install -q --no-deps -e . --config-settings editable_mode=strict \
		>$(VENV)/link.log 2>&1 || { cat $(VENV)/link.log; exit 1; }
	touch $@

install: $(LINKED)

demo: install
	$(BIN)/python examples/demo.py

lint: install
	$(BIN)/ruff check $(PACKAGE_DIRS) tests examples tools bench
	$(BIN)/ruff format --check $(PACKAGE_DIRS) tests examples tools bench

typecheck: install
	$(BIN)/mypy -p latestore

pytest: install
	$(BIN)/python -m pytest -q -n auto

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
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
