# spikeforge — everything starts here.
#   make demo       set up (first run only) and run the main demo on the golden model
#   make test       set up and run the test suite (what CI runs)
#   make test-long  the long sweeps (1,000 RTL cases, ECP5 builds, slow tests)
#   make bench      quick benchmarks (minutes) -> benchmarks/RESULTS.md; make bench-full: every board (~1 h)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# YoWASP (wasm yosys/nextpnr), cocotb builds and numba caches live in one known folder.
export XDG_CACHE_HOME := $(CURDIR)/.cache
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export MPLBACKEND := Agg
PYTEST_ARGS ?=

.PHONY: setup demo test test-long bench bench-full clean distclean iverilog

setup: $(STAMP) iverilog

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]" -c constraints.txt
	@touch $(STAMP)

# Icarus Verilog runs the cocotb testbenches. Installed with apt-get when missing.
iverilog:
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Icarus Verilog with apt-get ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then \
	    echo "Installing Icarus Verilog with sudo apt-get ..."; \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	  else \
	    echo "ERROR: Icarus Verilog (iverilog) is missing and this user cannot run apt-get."; \
	    echo "       Install it as root: apt-get install iverilog   (the RTL tests need it)."; \
	    exit 1; \
	  fi; \
	fi

demo: setup
	$(VENV)/bin/spikeforge demo blimp --out out/demo

test: setup
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-long: setup
	SPIKEFORGE_LONG=1 $(PY) -m pytest -n 2 -m "slow" $(PYTEST_ARGS)

bench: setup
	.venv/bin/spikeforge bench --quick

bench-full: setup
	.venv/bin/spikeforge bench --full

clean:
	rm -rf out .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
