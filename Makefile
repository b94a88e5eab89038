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
# The second pass of `make test`: the engine_fidelity tests again on classic Spark + delta-spark (what
# Databricks runs). loadfile keeps a module's graph run in one worker (one JVM builds it once).
CLASSIC_PYTEST_ARGS ?= -n 2 --dist loadfile -m engine_fidelity
# Progress lines only on the console; every event is still in the run's log in the UI.
INFO_LOGS := {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

.PHONY: install run test security ui validate lint lock jars clean bench browser screenshot

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

# Whole suite on Sail (the local default), then the engine_fidelity tests on classic Spark.
test: $(STAMP) lint typecheck jars browser
	SPARK_ENGINE=sail $(BIN)/python -m pytest $(PYTEST_ARGS)
	SPARK_ENGINE=classic $(BIN)/python -m pytest $(CLASSIC_PYTEST_ARGS)

# Headless Chromium from Debian for the UI test (CI runs as root); where it cannot be installed that test skips.
browser:
	@test -x /usr/bin/chromium \
		|| apt-get install -y -qq --no-install-recommends chromium >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
		|| echo "chromium could not be installed: assets_tests/test_browser.py will be skipped"

# The README's picture of the asset graph: the browser test's screenshot replaces docs/asset-graph.png.
screenshot: $(STAMP) browser
	UPDATE_DOCS_SCREENSHOT=1 $(BIN)/python -m pytest -q -rs -p no:cacheprovider assets_tests/test_browser.py

# bandit (medium+), pip-audit of the lock file (skipped with the reason when PyPI's JSON API is unreachable)
# and the secret scan; `make test` runs the same tests as part of the suite.
security: $(STAMP)
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider assets_tests/test_security.py

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

validate: $(STAMP)
	$(BIN)/dagster definitions validate -m healthcare_assets.definitions

lint: $(STAMP)
	$(BIN)/ruff check healthcare_assets assets_tests benchmarks
	$(BIN)/ruff format --check healthcare_assets assets_tests benchmarks

clean:
	rm -rf .lakehouse .dagster_home

# Benchmarks on a fresh temporary lakehouse: SCALE=tiny|small|medium|large (~100k claims at small,
# ~1M at medium, ~10M at large); writes benchmarks/results.md and benchmarks/results.json.
SCALE ?= small
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --scale $(SCALE)

# Delta jars for the classic Spark engine (SPARK_ENGINE=classic), matching the pinned pyspark 4.0.x.
DELTA_VERSION := 4.0.1
JARS := .jars/delta-spark_2.13-$(DELTA_VERSION).jar .jars/delta-storage-$(DELTA_VERSION).jar
jars: $(JARS)
.jars/delta-spark_2.13-$(DELTA_VERSION).jar:
	mvn -q dependency:copy -Dartifact=io.delta:delta-spark_2.13:$(DELTA_VERSION) -DoutputDirectory=.jars
.jars/delta-storage-$(DELTA_VERSION).jar:
	mvn -q dependency:copy -Dartifact=io.delta:delta-storage:$(DELTA_VERSION) -DoutputDirectory=.jars

# Re-resolve requirements.lock after changing a pin in pyproject.toml: the cluster's dependencies plus the
# `local` engine and the `test` tools, exactly pinned for laptops and CI (a cluster installs the wheel only).
lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra local --extra test --python-version 3.11 -o requirements.lock

# --- CI and deployment (the GitHub Actions workflows call these targets) ---
ENVIRONMENTS := local dev staging prod
ACTIONLINT_VERSION := v1.7.12
# Deployed environments refuse to load without a workspace; validation needs none (no network at load time).
VALIDATE_WORKSPACE := DATABRICKS_HOST=https://validate.invalid DATABRICKS_TOKEN=unused

.PHONY: validate-all typecheck security coverage wheel actionlint workflows

# `dagster definitions validate` for every environment.
validate-all: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@for env in $(ENVIRONMENTS); do \
		echo "validating $$env"; \
		HEALTHCARE_ENV=$$env $(VALIDATE_WORKSPACE) $(BIN)/dagster definitions validate -m healthcare_assets.definitions || exit 1; \
	done

typecheck: $(STAMP)
	$(BIN)/mypy healthcare_assets

# Static security scan of the package and a vulnerability audit of the pinned lock.
coverage: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) --cov --cov-report=term --cov-report=xml

# The project wheel job clusters install (uploaded by `python -m healthcare_assets.deploy upload-wheel`).
wheel: $(STAMP)
	$(BIN)/uv build --wheel --out-dir dist

# actionlint through the Go module proxy into the git-ignored .tools/ folder.
.tools/actionlint:
	GOBIN=$(CURDIR)/.tools go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

actionlint: .tools/actionlint

# The workflows parse, lint clean and call only targets and modules that exist.
workflows: $(STAMP) actionlint
	$(BIN)/yamllint -d relaxed .github/workflows dagster_cloud.yaml workspace.yaml
	.tools/actionlint

# Dagster+ (CD only: the dagster-cloud CLI lives in its own virtualenv, outside the pinned stack, and keeps
# the state of one `ci init` -> `ci build` -> `ci deploy` sequence in DAGSTER_BUILD_STATEDIR).
DEPLOYMENT ?= dev
JOB ?= data_quality_checks
DAGSTER_CLOUD_VERSION := 1.13.27
DAGSTER_CLOUD := .dagster-cloud/bin/dagster-cloud
export DAGSTER_BUILD_STATEDIR ?= $(CURDIR)/.dagster-cloud/build-state
.PHONY: dagster-plus-deploy dagster-plus-job
$(DAGSTER_CLOUD):
	$(PYTHON) -m venv .dagster-cloud
	.dagster-cloud/bin/python -m pip install --quiet dagster-cloud==$(DAGSTER_CLOUD_VERSION)
dagster-plus-deploy: $(DAGSTER_CLOUD)
	rm -rf $(DAGSTER_BUILD_STATEDIR) && mkdir -p $(DAGSTER_BUILD_STATEDIR)
	$(DAGSTER_CLOUD) ci init --project-dir . --deployment $(DEPLOYMENT) --location-name healthcare_assets
	$(DAGSTER_CLOUD) ci build --build-strategy python-executable
	$(DAGSTER_CLOUD) ci deploy
# A release gate: launches JOB in the Dagster+ deployment, waits for the run, fails unless it succeeded.
dagster-plus-job: $(STAMP)
	DAGSTER_CLOUD_DEPLOYMENT=$(DEPLOYMENT) $(BIN)/python -m healthcare_assets.deploy run-gate $(JOB)
