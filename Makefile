# Everything a fresh machine needs: `make demo` and `make test` create the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGE_DIRS := core store cli ingest index encoders integrations migrations serve distributed explain
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast lint typecheck pytest eval bench bench-scale fastplaid-venv gpu-wheels gpu-check clean oracle oracle-table

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build first: a bare `torch` requirement would pull several GB of CUDA wheels.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]" --config-settings editable_mode=strict
	# The oracle's reference (tests/oracle): see the `oracle` extra in pyproject.toml.
	$(BIN)/python -m pip install -q --no-deps "colpali-engine==0.3.18"
	touch $(STAMP)

# editable_mode=strict installs a tree of links to the mapped folders, so mypy and
# other tools see a plain `latestore` package; a module added or removed since needs
# the tree linked again, which this does whenever the set of files changes (the search
# page's static files included).
MODULES := $(shell find $(PACKAGE_DIRS) -name '*.py' -o -name '*.ini' -o -name '*.mako' -o -name 'py.typed' -o -path '*/static/*' 2>/dev/null | sort | cksum | cut -d' ' -f1)
LINKED := $(VENV)/.linked-$(MODULES)

$(LINKED): $(STAMP)
	rm -f $(VENV)/.linked-*
	$(BIN)/python -m pip install -q --no-deps -e . --config-settings editable_mode=strict \
		>$(VENV)/link.log 2>&1 || { cat $(VENV)/link.log; exit 1; }
	touch $@

install: $(LINKED)

# The PyLate oracle runs in its own virtualenv: PyLate 1.6.0 pins transformers and
# sentence-transformers apart from ours. --no-deps for PyLate itself: its fast-plaid
# dependency pins a CUDA torch build that encoding never uses.
ORACLE_VENV := .venv-oracle
ORACLE_STAMP := $(ORACLE_VENV)/.installed
$(ORACLE_STAMP):
	test -x $(ORACLE_VENV)/bin/python || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip install -q "torch==2.13.0"
	$(ORACLE_VENV)/bin/python -m pip install -q "transformers==5.3.0" \
		"sentence-transformers==5.3.0" "ujson==5.12.0" "datasets>=2.20.0" "pandas>=2.2.1"
	$(ORACLE_VENV)/bin/python -m pip install -q --no-deps "pylate==1.6.0"
	touch $(ORACLE_STAMP)

# PyLate's vectors into build/pylate, then the main suite's oracle tests compare against
# them (and fail, rather than skip, when the vectors are missing).
oracle: install $(ORACLE_STAMP)
	rm -rf build/pylate
	$(ORACLE_VENV)/bin/python tools/pylate_oracle.py build/pylate
	LATESTORE_REQUIRE_PYLATE_ORACLE=1 $(BIN)/python -m pytest -q -p no:xdist tests/oracle

# Rewrite docs/oracle.md's family x status table from the oracle tests' results.
oracle-table: install
	$(BIN)/python tools/oracle_table.py docs/oracle.md build/oracle

demo: install
	$(BIN)/python examples/demo.py

lint: install
	$(BIN)/ruff check $(PACKAGE_DIRS) tests examples tools bench
	$(BIN)/ruff format --check $(PACKAGE_DIRS) tests examples tools bench

typecheck: install
	$(BIN)/mypy -p latestore

pytest: install
	$(BIN)/python -m pytest -q -n $$(( $$(nproc) + 1 )) --dist loadgroup --durations=25

test: lint typecheck pytest

# The inner loop: everything but the tests marked slow (crash, race and subprocess runs).
test-fast: install
	$(BIN)/python -m pytest -q -n auto -m "not slow"

eval: install
	$(BIN)/python examples/evaluate_scifact.py

bench: install
	$(BIN)/python -m bench.run

# How build rate, disk, memory, open time, latency and overlap@10 grow with the corpus
# (bench/scale.py): 1M and 4M tokens by default, 16M and 64M with BENCH_SCALE_ARGS=--big.
BENCH_SCALE_ARGS ?=
bench-scale: install
	$(BIN)/python -m bench.scale --out build/bench-scale/latest.json $(BENCH_SCALE_ARGS)

# fast-plaid beside latestore in bench-scale (`--peers fast-plaid`), in its own
# virtualenv: fast-plaid 1.7.0's wheels are built per torch (1.7.0.2110 for torch 2.11.0)
# and PyPI's torch 2.11.0 for Linux is the CUDA build. It runs on CPU, but imports only
# with the CUDA libraries it links against, so those wheels come without their own
# dependencies, and triton, cusolver, nvrtc, nvtx and cuda-bindings (not loaded on CPU)
# are left out: about 3.7 GB instead of the full set. Not part of install or test.
FASTPLAID_VENV := build/fastplaid-venv
FASTPLAID_STAMP := $(FASTPLAID_VENV)/.installed
$(FASTPLAID_STAMP):
	test -x $(FASTPLAID_VENV)/bin/python || $(PYTHON) -m venv $(FASTPLAID_VENV)
	$(FASTPLAID_VENV)/bin/python -m pip install -q --no-cache-dir --no-deps "torch==2.11.0" \
		"fast-plaid==1.7.0.2110" "fastkmeans==0.5.0" \
		"nvidia-cudnn-cu13==9.19.0.56" "nvidia-cusparselt-cu13==0.8.0" \
		"nvidia-nccl-cu13==2.28.9" "nvidia-nvshmem-cu13==3.4.5" "nvidia-cublas==13.1.0.3" \
		"nvidia-cuda-cupti==13.0.85" "nvidia-cuda-runtime==13.0.96" \
		"nvidia-cufft==12.0.0.61" "nvidia-cufile==1.15.1.6" "nvidia-curand==10.4.0.35" \
		"nvidia-cusparse==12.6.3.3" "nvidia-nvjitlink==13.0.88"
	$(FASTPLAID_VENV)/bin/python -m pip install -q --no-cache-dir filelock fsspec jinja2 \
		networkx setuptools sympy typing-extensions numpy joblib usearch
	$(FASTPLAID_VENV)/bin/python -c "import torch, fast_plaid.search; print('fast-plaid ready, torch', torch.__version__)"
	touch $(FASTPLAID_STAMP)

fastplaid-venv: $(FASTPLAID_STAMP)

# The GPU check runs on a CUDA machine with python3, torch and triton (no virtualenv):
# `make gpu-wheels` here, then `make gpu-check` there (or tools/gpu_check.sh directly).
gpu-wheels:
	bash tools/gpu_wheels.sh

gpu-check:
	bash tools/gpu_check.sh

clean:
	rm -rf $(VENV) $(ORACLE_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
