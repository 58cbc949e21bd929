# The two commands of the README. Both create the virtual environment .venv on first use.
#   make quickstart   set up, then train + evaluate + animate a small model on the embedded digits (CPU, offline)
#   make test         set up with the development tools, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: quickstart test lint setup

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

quickstart: $(VENV)/.installed
	$(BIN)/srvp quickstart

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: $(VENV)/.installed
	$(BIN)/ruff check .
