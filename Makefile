# The two commands a newcomer needs: `make serve` and `make test`. Each creates .venv and installs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: serve test demo bench bench-process bench-all bench-writer lint typecheck install install-dev lock clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "storebridge needs Python >= 3.11; set PYTHON=python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies come from the hashed lock files (exactly those versions), then storebridge itself.
# pip's and setuptools' own chatter (build warnings) goes to $(VENV)/install.log, shown only if the
# install fails: `make serve` and `make demo` then open with the hub's own output.
QUIET_INSTALL = >>$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
$(VENV)/.installed: pyproject.toml requirements/main.lock | $(BIN)/python
	@echo "installing storebridge into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/main.lock $(QUIET_INSTALL)
	@$(BIN)/python -m pip install --quiet --no-deps -e . $(QUIET_INSTALL)
	@touch $@

# The example provider (examples/acmepay) is installed too: `make test` runs its tests through its entry point.
$(VENV)/.installed-dev: pyproject.toml requirements/dev.lock examples/acmepay/pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -e examples/acmepay
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

serve: $(VENV)/.installed
	@$(BIN)/storebridge serve --host $(HOST) --port $(PORT)

demo: $(VENV)/.installed
	@$(BIN)/storebridge demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check storebridge tests bench examples
	$(BIN)/ruff format --check storebridge tests bench examples

# mypy's configured packages (storebridge, storebridge_acmepay), then the example's tests, strict too.
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy
	$(BIN)/mypy examples/acmepay/tests

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/ingest.py

# Needs PostgreSQL (STOREBRIDGE_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
bench-process: $(VENV)/.installed-dev
	$(BIN)/python bench/process.py

# The SQLite inbox writer alone (no HTTP): what storing costs, with and without checkpoints.
bench-writer: $(VENV)/.installed-dev
	$(BIN)/python bench/writer.py

# Every figure BENCHMARKS.md holds for issue 19's floors, in one run: ingest (with its baseline), then processing.
bench-all: bench bench-process

# Refresh the lock files within pyproject.toml's ranges (after changing a dependency, or to upgrade).
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11 --quiet
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) $(UPGRADE) -o requirements/main.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) $(UPGRADE) -o requirements/dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache storebridge.egg-info
