# The two commands of the README. Both create the virtual environment .venv on first use.
#   make quickstart   set up, then train + evaluate + animate a small model on the embedded digits (CPU, offline)
#   make test         set up with the development tools, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: quickstart test lint setup browser

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

quickstart: $(VENV)/.installed
	$(BIN)/srvp quickstart

# Debian's chromium and chromedriver for the demo's browser test (installed when running as root, as CI does;
# otherwise that one test is skipped with a reason naming the package)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium/chromedriver missing and not root: the demo's browser test will be skipped"; fi; }

test: $(VENV)/.installed browser
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: $(VENV)/.installed
	$(BIN)/ruff check .
