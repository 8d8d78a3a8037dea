# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both build their own virtual environment from scratch-safe steps; nothing relies on what was
# installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPython minor versions authcore supports (pyproject.toml declares exactly these; a test
# keeps the two in step). The whole suite runs on $(PYTHON); the core, adapter and backend
# tests run again on each other version, each in its own .venv-X.Y. A version that cannot be
# found is skipped with the reason printed; with CI=true it fails (scripts/find_python.py).
PYTHONS := 3.11 3.12 3.13
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
OTHER_PYTHONS := $(filter-out $(PYTHON_VERSION),$(PYTHONS))
# No coverage gate there: coverage is measured once, on $(PYTHON), by the whole suite.
OTHER_PYTHON_TESTS := $(wildcard tests/test_*.py) tests/adapters tests/backends
# pytest-xdist workers: one per core by default (CI has two). Much of the suite waits on real
# servers and databases, which a second worker overlaps; PYTEST_WORKERS=0 runs it in one
# process (what `pytest` alone does), e.g. to read a failure's output in order.
PYTEST_WORKERS ?= auto

.PHONY: test test-latest lock demo lint typecheck pytest pytest-other-pythons pytest-subset bench fuzz soak clean

# The test environment is installed from requirements/test.lock, the one place versions are
# chosen: every package with its hash, for each Python in PYTHONS (uv's universal resolution),
# hatchling included so that building authcore itself picks nothing either. pyproject.toml keeps
# ranges, as a library must; `make lock` moves the pins, `make test-latest` tries what the
# ranges allow today (DEPS=latest), so an upstream release is a change we make on purpose.
LOCK := requirements/test.lock
DEPS ?= locked
export AUTHCORE_DEPS := $(DEPS)
UV_VERSION := 0.13.9

$(STAMP): pyproject.toml $(LOCK)
	@case " $(PYTHONS) " in *" $(PYTHON_VERSION) "*) ;; *) \
		echo "$(PYTHON) is Python $(PYTHON_VERSION); authcore supports $(PYTHONS) (set PYTHON=)" >&2; \
		exit 1;; esac
	test -x $(BIN)/python || $(PYTHON) -m venv --clear $(VENV)
ifeq ($(DEPS),latest)
	$(BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager pip -e '.[test]'
else
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
endif
	$(BIN)/python -m pip check
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python scripts/prepare_test_env.py
	$(BIN)/coverage erase
	$(BIN)/pytest -n $(PYTEST_WORKERS) --cov --cov-branch --cov-report= -p no:cacheprovider
	$(BIN)/coverage report --fail-under=85
	@echo "core coverage gate (95%):"
	$(BIN)/coverage report --fail-under=95 --include='src/authcore/[a-z]*.py,src/authcore/proxy/*.py' --omit='src/authcore/cli/*,src/authcore/__main__.py,src/authcore/testing.py'

pytest-other-pythons: $(addprefix pytest-python,$(OTHER_PYTHONS))

# pytest-python3.12 etc.: find the interpreter, then rerun this Makefile with its own venv.
pytest-python%:
	@interpreter=$$($(PYTHON) scripts/find_python.py $*) || exit 1; \
	if [ -n "$$interpreter" ]; then \
		echo "== Python $* ($$interpreter): core, adapter and backend tests in $(VENV)-$*"; \
		$(MAKE) --no-print-directory pytest-subset PYTHON="$$interpreter" VENV=$(VENV)-$*; \
	fi

# The end-to-end tests (real servers on loopback) run once, on $(PYTHON): what differs between
# interpreters is covered by the unit and backend tests, and the budget is 10 minutes.
pytest-subset: $(STAMP)
	$(BIN)/python scripts/prepare_test_env.py
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q -p no:cacheprovider -m "not e2e" $(OTHER_PYTHON_TESTS)

test: lint typecheck pytest pytest-other-pythons

# The same run against the newest releases the ranges in pyproject.toml admit, in venvs of its
# own (.venv-latest*). Run it before `make lock`, and whenever an upstream release matters.
test-latest:
	$(MAKE) test VENV=.venv-latest DEPS=latest

# Re-resolve the lock with the uv version named above: every pin moves to the newest release the
# ranges admit (LOCK_UPGRADE="--upgrade-package redis" moves one; LOCK_UPGRADE= keeps the pins
# and only resolves what pyproject.toml changed).
LOCK_UPGRADE ?= --upgrade
lock:
	test -x .venv-lock/bin/python || $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'
	.venv-lock/bin/uv pip compile pyproject.toml requirements/build.in --extra test --universal \
		--python-version $(firstword $(PYTHONS)) --generate-hashes $(LOCK_UPGRADE) \
		--custom-compile-command 'make lock' -o $(LOCK)

demo: $(STAMP)
	$(BIN)/authcore demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet 'atheris>=2.3'
	$(BIN)/python fuzz/run.py --seconds $${FUZZ_SECONDS:-120}

soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) $(addprefix .venv-,$(PYTHONS)) .venv-lock .venv-latest $(addprefix .venv-latest-,$(PYTHONS)) .coverage .mypy_cache .ruff_cache .hypothesis
