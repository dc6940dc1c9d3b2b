# radiusd — `make run` and `make test` are all a newcomer needs (README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/radiusd.toml

.PHONY: install install-test run test test-fast bench clean

install: $(VENV)/.installed

# Reproducible installs: every dependency pinned by constraints.txt (pip freeze of a green run).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e .
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

run: install
	$(BIN)/radiusd --config $(CONFIG) init
	$(BIN)/radiusd --config $(CONFIG) serve

# The suite runs on every core (pytest-xdist), a test module's tests in one process so its
# servers and browser start once; TEST_JOBS=0 runs it in this one process.
TEST_JOBS ?= auto

test: install-test
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# Everything but the tests that start processes or browsers.
test-fast: install-test
	$(BIN)/python -m pytest -m "not system" $(PYTEST_ARGS)

# Load radiusd (and FreeRADIUS) and report req/s, latency, lost and bad replies
# (docs/performance.md). make has no long options of its own: pass them in BENCH, e.g.
#   make bench BENCH="--vs-freeradius --pin"
bench: install
	$(BIN)/python -m radiusd.bench $(BENCH)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
