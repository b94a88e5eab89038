"""Concurrent writers leave every table consistent.

* Storage: several processes replacing the same and different days of one Delta table at once
  all succeed (lost commits are retried) and every commit lands exactly once.
* Pipeline: a run on the multiprocess executor (steps in parallel processes, each with its own
  Spark engine) and a second run of other days, started at the same time in another process,
  leave tables that pass every data-quality gate, reconciliation included.
"""

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from assets_tests.pipeline import RANGE_END_TAG, RANGE_START_TAG, SMALL_DATA, Pipeline, check_results, run_checks
from healthcare_assets.definitions import build_definitions
from healthcare_assets.partitions import daily_partitions
from healthcare_assets.resources import delta
from healthcare_assets.resources.delta import DeltaWriteConflict, retried_on_conflict
from healthcare_assets.settings import load_settings

pytestmark = pytest.mark.slow
DAGSTER = str(Path(sys.executable).with_name("dagster"))
PIPELINE_GROUPS = ("landing", "bronze", "silver")  # gold adds steps, not new kinds of write

# One writer: alternately replaces the day every writer shares and a day of its own, four times each.
WRITER = """
import sys
from datetime import date, timedelta
from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.spark import get_session

root, writer = sys.argv[1], int(sys.argv[2])
spark = get_session("sail")
storage = DeltaStorage(spark, root)
shared, own = date(2026, 1, 1), date(2026, 1, 2) + timedelta(days=writer)
for _ in range(4):
    for day in (shared, own):
        frame = spark.range(500).selectExpr("id", f"{writer} AS writer", f"DATE'{day.isoformat()}' AS ingest_date")
        storage.replace_days(frame, TableRef("bronze", "contended"), day, day)
"""


def test_concurrent_writers_of_one_table_all_commit_exactly_once(tmp_path):
    writers = 3
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for n in range(writers)
    ]
    outcomes = [p.communicate(timeout=300) for p in processes]
    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr.decode()[-2000:]
    table = DeltaTable(str(tmp_path / "bronze" / "contended"))
    rows = table.to_pandas()
    rows["ingest_date"] = rows["ingest_date"].astype(str)
    assert table.version() == writers * 8 - 1  # every write one commit, none lost, none doubled
    shared = rows[rows["ingest_date"] == "2026-01-01"]
    assert len(shared) == 500 and shared["writer"].nunique() == 1  # one writer's day, never a mix
    for n in range(writers):
        own = rows[rows["ingest_date"] == f"2026-01-{2 + n:02d}"]
        assert len(own) == 500 and set(own["writer"]) == {n}


class _Table:
    """A writer whose first commits lose to another writer, then wins."""

    def __init__(self, losses: int, error: Exception):
        self.losses, self.error, self.attempts = losses, error, 0

    @retried_on_conflict
    def write(self):
        self.attempts += 1
        if self.attempts <= self.losses:
            raise self.error
        return "committed"


@pytest.fixture
def delays(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr(delta.time, "sleep", waited.append)
    return waited


def test_a_lost_commit_is_retried_with_growing_backoff(delays):
    table = _Table(2, RuntimeError("Failed to commit transaction: 7"))
    assert table.write() == "committed"
    assert table.attempts == 3 and len(delays) == 2 and delays[1] > delays[0] > 0


def test_other_errors_are_not_retried(delays):
    table = _Table(1, RuntimeError("Path does not exist"))
    with pytest.raises(RuntimeError, match="Path does not exist"):
        table.write()
    assert table.attempts == 1 and delays == []


def test_retries_are_bounded_and_the_error_says_what_to_do(delays):
    table = _Table(100, RuntimeError("io.delta.exceptions.ConcurrentAppendException: files were added"))
    with pytest.raises(DeltaWriteConflict, match="rerun when the other runs have finished"):
        table.write()
    assert table.attempts == delta.WRITE_ATTEMPTS


def parallel_steps_definitions() -> dg.Definitions:
    """The code location plus a job that runs each step in its own process (two at a time)."""
    defs = build_definitions(load_settings())
    job = dg.define_asset_job(
        "pipeline_on_multiprocess_executor",
        selection=dg.AssetSelection.groups(*PIPELINE_GROUPS).without_checks(),
        partitions_def=daily_partitions,
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))


def _start(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([DAGSTER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_multiprocess_run_and_a_second_run_at_the_same_time_leave_consistent_tables(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # the instance's storage exists before two processes use it (as with a deployed instance)
    dg.DagsterInstance.from_config(str(home)).dispose()
    root = tmp_path / "lakehouse"
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKEHOUSE_ROOT": str(root)}
    config = json.dumps({"ops": {"synthetic_landing_feeds": {"config": SMALL_DATA}}})
    config_file = tmp_path / "run_config.yaml"  # JSON is YAML
    config_file.write_text(config)
    multiprocess = _start(
        env,
        *("job", "execute", "-f", __file__, "-a", "parallel_steps_definitions"),
        *("-j", "pipeline_on_multiprocess_executor", "--config", str(config_file)),
        *("--tags", json.dumps({RANGE_START_TAG: "2026-01-01", RANGE_END_TAG: "2026-01-02"})),
    )
    second = _start(
        env,
        *("asset", "materialize", "-m", "healthcare_assets.definitions", "--config-json", config),
        *("--select", ",".join(f"group:{g}" for g in PIPELINE_GROUPS), "--partition-range", "2026-01-03...2026-01-04"),
    )
    for run in (multiprocess, second):
        _, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-3000:]

    pipeline = Pipeline(root)
    days = {f"2026-01-0{n}" for n in range(1, 5)}
    for schema, table in [("bronze", "medical_claims"), ("bronze", "quarantine"), ("silver", "medical_claims")]:
        stored = DeltaTable(pipeline.table(schema, table)).to_pandas()
        assert set(stored["ingest_date"].astype(str)) == days, (schema, table)
    # every gate over the four days, against what the two runs left: keys unique, landing = bronze + quarantine,
    # one current record per member, values valid
    result = run_checks(pipeline, date(2026, 1, 1), date(2026, 1, 4))
    failed = [key for key, e in check_results(result).items() if not e.passed and e.severity.value == "ERROR"]
    assert failed == []
    assert len(check_results(result)) > 10
