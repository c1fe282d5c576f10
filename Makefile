# The whole set-up on a fresh machine is `make demo` or `make test`: each creates .venv and
# installs what it needs on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test lint bench clean

$(BIN)/python:
	@echo "Creating the virtual environment $(VENV) (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip

# pip shows its own progress here: the first install downloads and unpacks about 70 packages.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "Installing clinic-kpis and its dependencies into $(VENV): 1 to 2 minutes the first time, more on a slow network"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -e .
	touch $@

# dev includes the spark extra: the suite checks that Spark computes what DuckDB computes
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "Installing clinic-kpis with its test tools into $(VENV): 2 to 3 minutes (with Spark) the first time, quietly"
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[dev,spark]"
	touch $@ $(VENV)/.installed

# DEMO_ARGS passes options to `clinic-kpis demo`, e.g. make demo DEMO_ARGS="--port 8502 --no-serve".
demo: $(VENV)/.installed  ## simulate a practice, ingest, compute, build a report, serve the dashboard
	$(BIN)/clinic-kpis demo $(DEMO_ARGS)

test: $(VENV)/.installed-dev  ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check kpis ingest dashboards reports sample_data tests benchmarks

# BENCH_ARGS picks the sizes and repetitions, e.g. make bench BENCH_ARGS="--scale small --repeat 5";
# see `python -m benchmarks --help`. Results: bench-results.json (and benchmarks/RESULTS.md by hand).
BENCH_ARGS ?= --scale 1m --repeat 3
bench: $(VENV)/.installed-dev  ## ingest and KPI speed, side by side with a pandas baseline
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
