# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo tour test bench typecheck docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# One stamp per extra set, so `make demo` stays light and `make test` gets everything.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[demo]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[test]"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) examples/tour.py

# The core in eight steps, no framework needed.
tour: $(VENV)/.demo-installed
	$(PY) examples/tour.py

test: $(VENV)/.test-installed
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)
	$(PY) -m coverage report --include='*/airlock/_*.py' --fail-under=95

typecheck: $(VENV)/.test-installed
	$(PY) -m mypy

bench: $(VENV)/.test-installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .coverage .pytest_cache site
