# mixlab: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo science test test-fast test-slow test-tools lint format bench clean-venv

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo

science: $(STAMP)
	$(PY) -m experiments.demo --calibration=experiments/configs/demo.py:science_calibrate \
		--sweep=experiments/configs/demo.py:science

test: $(STAMP)
	$(PY) -m mixlab.host pytest -n 2 --dist worksteal -m 'not tools'

test-fast: $(STAMP)
	$(PY) -m mixlab.host pytest -n 2 --dist worksteal -m 'not slow and not tools'

test-slow: $(STAMP)
	$(PY) -m mixlab.host pytest -n 2 -m 'slow and not tools'

test-tools: $(STAMP)
	$(PY) -m mixlab.host pytest -n 2 -m tools

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) -m experiments.benchmarks.synbio
	$(PY) -m experiments.benchmarks.mixture

clean-venv:
	rm -rf $(VENV)
