# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both build their own virtual environment from scratch-safe steps; nothing relies on what was
# installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest bench fuzz soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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
	$(BIN)/coverage report --fail-under=95 --include='src/authcore/[a-z]*.py' --omit='src/authcore/cli.py,src/authcore/__main__.py,src/authcore/testing.py'

test: lint typecheck pytest

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
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .hypothesis
