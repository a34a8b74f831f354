# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: on x86_64 PyPI serves the CUDA build, which also runs on the CPU.
TORCH := torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1

.PHONY: demo test venv dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# The Gradio app on the embedded default model: http://127.0.0.1:7860
demo: $(VENV)/.installed
	$(BIN)/mm demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

# Style, then the import contracts of pyproject.toml's [tool.importlinter] (which module may import which).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
