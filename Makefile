# inril developer entry points. `make help` lists them; the README's two commands are `make sim` and `make test`.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# setup reruns only when the dependency lists change, so every target can depend on it cheaply.
STAMP := $(VENV)/.stamp
PYTEST := $(BIN)/python -m pytest
SIM_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-slow sim

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PYTHON=$(PYTHON)  SIM_ARGS='$(SIM_ARGS)'"

setup: $(STAMP)  ## create .venv with PYTHON (python3.11) and install requirements.txt + inril + inril_ros (editable)

$(STAMP): requirements.txt setup.py setup.cfg ros2_ws/src/inril_ros/setup.py
	@# MuJoCo renders off-screen through OSMesa when there is no GPU (render tests, camera images)
	@ldconfig -p | grep -q libOSMesa || { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq libosmesa6 libgl1) || echo "warning: install libosmesa6 for off-screen rendering"; }
	@# pyrealsense2 (imported by furniture_bench) loads libusb-1.0
	@ldconfig -p | grep -q libusb-1.0 || { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq libusb-1.0-0) || echo "warning: install libusb-1.0-0 for furniture_bench (pyrealsense2)"; }
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 setup'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps furniture-bench==0.1
	$(BIN)/python -m pip install -e . --no-deps
	$(BIN)/python -m pip install -e ros2_ws/src/inril_ros --no-deps
	touch $@

test: setup  ## fast tests (everything not marked slow); pytest's "no tests ran" (exit 5) fails too
	$(PYTEST) -m "not slow" -q

test-slow: setup  ## slow tests only (simulation parity, training curves)
	$(PYTEST) -m slow -q

sim: setup  ## short IN-RIL run on the default task, then its report; change it with SIM_ARGS='task=can ...'
	$(BIN)/inril sim $(SIM_ARGS)
