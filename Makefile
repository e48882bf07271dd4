# The two commands of the README:
#   make book   installs everything into .venv, runs every chapter (smoke), builds _build/html
#   make test   installs everything into .venv and runs the tests
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of PyTorch first, so the package's `torch>=2.2` does not pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns about every absent local index; keep its real errors (pipefail) and drop that noise.
QUIET := 2>&1 | { grep -v "is ignored" || true; }
STAMP := $(VENV)/.installed

.PHONY: book test install run clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_SPEC)  $(QUIET)
	$(BIN)/python -m pip install -q -e ".[dev]"  $(QUIET)
	$(BIN)/python -c "import torch, art, papermill, jupyter_book, ai4m_helpers"
	touch $(STAMP)

run: install
	$(BIN)/ai4m run --profile smoke --out _build/executed --keep-going

book: run
	$(BIN)/ai4m book --from _build/executed

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf _build
