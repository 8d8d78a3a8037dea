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

.PHONY: test demo lint typecheck pytest pytest-other-pythons pytest-subset bench fuzz soak clean

$(STAMP): pyproject.toml
	@case " $(PYTHONS) " in *" $(PYTHON_VERSION) "*) ;; *) \
		echo "$(PYTHON) is Python $(PYTHON_VERSION); authcore supports $(PYTHONS) (set PYTHON=)" >&2; \
		exit 1;; esac
	test -x $(BIN)/python || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python scripts/prepare_test_env.py
	$(BIN)/coverage erase
	$(BIN)/pytest --cov --cov-branch --cov-report= -p no:cacheprovider
	$(BIN)/coverage report --fail-under=85
	@echo "core coverage gate (95%):"
	$(BIN)/coverage report --fail-under=95 --include='src/authcore/[a-z]*.py' --omit='src/authcore/cli/*,src/authcore/__main__.py,src/authcore/testing.py'

pytest-other-pythons: $(addprefix pytest-python,$(OTHER_PYTHONS))

# pytest-python3.12 etc.: find the interpreter, then rerun this Makefile with its own venv.
pytest-python%:
	@interpreter=$$($(PYTHON) scripts/find_python.py $*) || exit 1; \
	if [ -n "$$interpreter" ]; then \
		echo "== Python $* ($$interpreter): core, adapter and backend tests in .venv-$*"; \
		$(MAKE) --no-print-directory pytest-subset PYTHON="$$interpreter" VENV=.venv-$*; \
	fi

# The end-to-end tests (real servers on loopback) run once, on $(PYTHON): what differs between
# interpreters is covered by the unit and backend tests, and the budget is 10 minutes.
pytest-subset: $(STAMP)
	$(BIN)/python scripts/prepare_test_env.py
	$(BIN)/pytest -q -p no:cacheprovider -m "not e2e" $(OTHER_PYTHON_TESTS)

test: lint typecheck pytest pytest-other-pythons

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
	rm -rf $(VENV) $(addprefix .venv-,$(PYTHONS)) .coverage .mypy_cache .ruff_cache .hypothesis
