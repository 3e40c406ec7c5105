# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# CONTRIBUTING.md describes every target, the services and their variables.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo tour test test-pythons test-django6 extras lint typecheck bench clean

# pip >= 25.1 installs PEP 735 dependency groups (`--group`).
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=25.1"

# One stamp per install, so `make demo` stays light and `make test` gets everything.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[demo]"
	touch $@

# The development dependencies are the `dev` group (test + checks) of pyproject.toml.
$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install -q --upgrade "pip>=25.1"
	$(PIP) install -q -e . --group dev
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
# down, failing under AIRLOCK_REQUIRE_SERVICES=1), appending to the coverage data;
# the server-process tests run once (their project is on PostgreSQL and MariaDB already).
# `coverage run` (not pytest-cov) measures from the first line, so the pytest plugin,
# which pytest imports before any plugin could start measuring, lives in the package.
test: $(VENV)/.test-installed
	$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest $(PYTEST_ARGS)
	AIRLOCK_TEST_DJANGO_DB=postgres $(PY) -m coverage run --append -m pytest tests/integrations/django -q \
		--ignore=tests/integrations/django/test_django_servers.py $(PYTEST_ARGS)
	$(PY) -m coverage report --include='*/airlock/_*.py' --fail-under=95

# The other supported Pythons: the core suite (no framework) on each, in its own
# virtualenv (.venv-3.12, .venv-3.13). `.ci/find-python` finds pyenv's interpreters.
PYTHONS    ?= 3.12 3.13
CORE_TESTS  = $(wildcard tests/test_*.py tests/compat/test_core*.py)
test-pythons: $(foreach v,$(PYTHONS),$(VENV)-$(v)/.core-installed)
	@for v in $(PYTHONS); do \
		echo "== core suite on Python $$v"; \
		$(VENV)-$$v/bin/python -m pytest -q -p no:cacheprovider -W "ignore:Unknown config option" \
			$(CORE_TESTS) $(PYTEST_ARGS) || exit 1; \
	done

$(VENV)-%/.core-installed: pyproject.toml
	test -x $(VENV)-$*/bin/python || "$$(bash .ci/find-python $*)" -m venv $(VENV)-$*
	$(VENV)-$*/bin/python -m pip install -q --upgrade "pip>=25.1"
	$(VENV)-$*/bin/python -m pip install -q -e . --group core
	touch $@

# The Django suite on Django 6 (Python 3.12), where django.tasks is Django's own.
DJANGO6_PYTHON ?= 3.12
DJANGO6_VENV   := $(VENV)-django6
DJANGO6_TESTS  ?= tests/integrations/django tests/integrations/executors/test_django_tasks.py
test-django6: $(DJANGO6_VENV)/.test-installed
	$(DJANGO6_VENV)/bin/python -m pytest -q -p no:cacheprovider $(DJANGO6_TESTS) $(PYTEST_ARGS)

$(DJANGO6_VENV)/.test-installed: pyproject.toml
	test -x $(DJANGO6_VENV)/bin/python || "$$(bash .ci/find-python $(DJANGO6_PYTHON))" -m venv $(DJANGO6_VENV)
	$(DJANGO6_VENV)/bin/python -m pip install -q --upgrade "pip>=25.1"
	$(DJANGO6_VENV)/bin/python -m pip install -q -e . --group test "Django>=6.0,<6.1"
	touch $@

# The built wheel, installed alone with each extra in a fresh virtualenv (CI runs it).
extras: $(VENV)/.test-installed
	$(PY) .ci/extras.py

# The project's habits: ruff (lint and format) and mypy, as pre-commit runs them.
lint: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

typecheck: $(VENV)/.test-installed
	$(PY) -m mypy

bench: $(VENV)/.test-installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(VENV)-3.* $(DJANGO6_VENV) .coverage .pytest_cache site dist
