# The two commands of the README: `make run` and `make test`. Both install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# The demo window `make run` materialises (daily partitions; the roster arrives on the first day).
DEMO_START ?= 2026-01-01
DEMO_END ?= 2026-01-14
PYTEST_ARGS ?= -n 2
# Progress lines only on the console; every event is still in the run's log in the UI.
INFO_LOGS := {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

.PHONY: install run test security ui validate lint lock jars clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.8

$(STAMP): requirements.lock pyproject.toml $(BIN)/uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# The classic engine needs the Delta jars; the embedded default needs nothing else.
ENGINE_PREREQS := $(if $(filter classic,$(SPARK_ENGINE)),jars,)

# Materialise the whole graph for the demo window (embedded engine unless SPARK_ENGINE says otherwise).
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(ENGINE_PREREQS)
	$(BIN)/dagster asset materialize -m healthcare_assets.definitions --select '*' \
		--partition-range $(DEMO_START)...$(DEMO_END) --config-json '$(INFO_LOGS)'
	$(BIN)/python -m healthcare_assets.report

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# bandit (medium+), pip-audit of the lock file (skipped with the reason when PyPI's JSON API is unreachable)
# and the secret scan; `make test` runs the same tests as part of the suite.
security: $(STAMP)
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider assets_tests/test_security.py

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

validate: $(STAMP)
	$(BIN)/dagster definitions validate -m healthcare_assets.definitions

lint: $(STAMP)
	$(BIN)/ruff check healthcare_assets assets_tests
	$(BIN)/ruff format --check healthcare_assets assets_tests

clean:
	rm -rf .lakehouse .dagster_home

# Delta jars for the classic Spark engine (SPARK_ENGINE=classic), matching the pinned pyspark 4.0.x.
DELTA_VERSION := 4.0.1
JARS := .jars/delta-spark_2.13-$(DELTA_VERSION).jar .jars/delta-storage-$(DELTA_VERSION).jar
jars: $(JARS)
.jars/delta-spark_2.13-$(DELTA_VERSION).jar:
	mvn -q dependency:copy -Dartifact=io.delta:delta-spark_2.13:$(DELTA_VERSION) -DoutputDirectory=.jars
.jars/delta-storage-$(DELTA_VERSION).jar:
	mvn -q dependency:copy -Dartifact=io.delta:delta-storage:$(DELTA_VERSION) -DoutputDirectory=.jars

# Re-resolve requirements.lock after changing a pin in pyproject.toml.
lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock
