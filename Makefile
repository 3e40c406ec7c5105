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

# The demo shop: Django on SQLite, tasks on a Huey queue with SQLite storage
# and an in-process worker. A fresh database each run; no server needed.
demo: $(VENV)/.demo-installed
	cd examples/shop && rm -f db.sqlite3 huey.sqlite3 && \
		$(abspath $(PY)) manage.py migrate -v 0 && \
		$(abspath $(PY)) manage.py tour

# The core in eight steps, no framework needed.
tour: $(VENV)/.demo-installed
	$(PY) examples/tour.py

# The second pytest run repeats the Django tests on PostgreSQL (skipped when it is
# down, failing under AIRLOCK_REQUIRE_SERVICES=1), appending to the coverage data.
test: $(VENV)/.test-installed
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)
	AIRLOCK_TEST_DJANGO_DB=postgres $(PY) -m pytest tests/integrations/django --cov --cov-append --cov-report= -q $(PYTEST_ARGS)
	$(PY) -m coverage report --include='*/airlock/_*.py' --fail-under=95

typecheck: $(VENV)/.test-installed
	$(PY) -m mypy

bench: $(VENV)/.test-installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .coverage .pytest_cache site
