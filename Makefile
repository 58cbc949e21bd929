# The two commands of the README. Both create the virtual environment .venv on first use.
#   make quickstart   set up, then train + evaluate + animate a small model on the embedded digits (CPU, offline)
#   make test         set up with the development tools, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: quickstart test lint setup browser gpu-check

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

# The GPU check of issue 22 (benchmarks/gpu_check.py: correctness on CUDA, speed at batch 128, the paper's model
# trained for the time left, in 7 minutes): writes the training digits as IDX files once (data/gpu-digits, ignored by
# git), then runs the check on this machine's GPU into GPU_CHECK_OUT. On this project's lent GPU machines, which
# have no virtual environment, use the one-liner of docs/benchmarks.md ("On a GPU") with carry data/gpu-digits.
GPU_CHECK_OUT ?= runs/gpu-check
gpu-check: $(VENV)/.installed
	test -f data/gpu-digits/train-images-idx3-ubyte.gz || $(BIN)/python benchmarks/gpu_check.py --write-digits data/gpu-digits
	$(BIN)/python benchmarks/gpu_check.py --out $(GPU_CHECK_OUT)
