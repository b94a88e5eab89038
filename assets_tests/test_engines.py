"""Sail and classic Spark (delta-spark, what Databricks runs) share one lakehouse and agree row for row.

PySpark allows one engine per process (Spark Connect or a JVM session), so the
other engine runs the same code location in a subprocess. These tests need the
delta-spark jars (`make jars`, a prerequisite of `make test`).
"""

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from assets_tests.pipeline import TEST_ENGINE, Pipeline, check_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
TINY = {"num_members": 60, "num_providers": 15, "claims_per_day": 25, "rx_claims_per_day": 10}
OTHER_ENGINE = "classic" if TEST_ENGINE == "sail" else "sail"
ENGINE_INFO = {"sail": "sail-delta-lake", "classic": "Delta-Lake"}  # how each engine signs its commits

# Runs one day of the graph on an engine in a fresh process and prints the run's outcome.
RUN_A_DAY = """
import json, sys
from datetime import date
from assets_tests.pipeline import Pipeline, check_results
root, engine, day, synthetic = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3]), json.loads(sys.argv[4])
pipeline = Pipeline(root, synthetic=synthetic, engine=engine)
result = pipeline.run(day, selection=pipeline.medallion_assets())
failed = sorted("/".join(k) for k, e in check_results(result).items() if not e.passed and e.severity.value == "ERROR")
errors = [f"{e.step_key}: {e.event_specific_data.error.message}" for e in result.all_events if e.is_step_failure]
print(json.dumps({"success": result.success, "failed_error_checks": failed, "step_errors": errors}))
"""


def _run_in_other_engine(root: Path, day: date) -> dict:
    env = {**os.environ, "SPARK_ENGINE": OTHER_ENGINE}
    completed = subprocess.run(
        [sys.executable, "-c", RUN_A_DAY, str(root), OTHER_ENGINE, day.isoformat(), json.dumps(TINY)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _tables(pipeline: Pipeline) -> list[Path]:
    root = Path(pipeline.settings.lakehouse_root)
    return sorted(p.parent for p in root.glob("*/*/_delta_log") if p.parent.parent.name != "landing")


def _canonical(path: Path, root: str) -> pd.DataFrame:
    frame = DeltaTable(str(path)).to_pandas()
    frame = frame.drop(columns=[c for c in frame.columns if c == "_ingested_at"])  # wall-clock time of the write
    # sums of floats (e.g. of logs) differ in the last bit with the order the engines add them
    frame = frame.apply(lambda column: column.round(9) if column.dtype.kind == "f" else column)
    # source file names are under each lakehouse's own landing root
    frame = frame[sorted(frame.columns)].astype(str).apply(lambda column: column.str.replace(root, "", regex=False))
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def lakehouses(tmp_path_factory):
    """`mixed`: day 1 and 3 on this process's engine, day 2 on the other; `single`: all days on this engine."""
    mixed = Pipeline(tmp_path_factory.mktemp("mixed"), synthetic=TINY)
    single = Pipeline(tmp_path_factory.mktemp("single"), synthetic=TINY)
    medallion = mixed.medallion_assets()
    outcomes = {
        "first": mixed.run(D1, selection=medallion),
        "other": _run_in_other_engine(Path(mixed.settings.lakehouse_root), D2),
    }
    outcomes["last"] = mixed.run(D3, selection=medallion)
    single.first_result = single.run(D1, D3, selection=medallion)
    return mixed, single, outcomes


def test_the_other_engine_reads_and_appends_tables_this_engine_wrote(lakehouses):
    mixed, _, outcomes = lakehouses
    assert outcomes["first"].success
    assert outcomes["other"] == {"success": True, "failed_error_checks": [], "step_errors": []}
    assert outcomes["last"].success
    failed_errors = [
        k for k, e in check_results(outcomes["last"]).items() if not e.passed and e.severity.value == "ERROR"
    ]
    assert failed_errors == []


def _has_rows_of(path: Path, day: date) -> bool:
    table = DeltaTable(str(path))
    if "ingest_date" not in [field.name for field in table.schema().fields]:
        return False
    return bool((table.to_pandas(columns=["ingest_date"])["ingest_date"] == day).any())


def test_history_is_intact_and_signed_by_both_engines(lakehouses):
    mixed, _, _ = lakehouses
    signed_by_both = []
    for path in _tables(mixed):
        history = DeltaTable(str(path)).history()
        versions = sorted(entry["version"] for entry in history)
        assert versions == list(range(len(history))), path  # no gap, no rewritten log
        # every version is still readable by an independent reader (time travel across engines)
        for version in versions:
            DeltaTable(str(path), version=version).to_pyarrow_table()
        if _has_rows_of(path, D2):  # the other engine wrote that day (a day without rows may make no commit)
            writers = {entry.get("engineInfo", "") for entry in history}
            for engine, signature in ENGINE_INFO.items():
                assert any(signature in writer for writer in writers), (path.name, engine, writers)
            signed_by_both.append(path.name)
    assert {"medical_claims", "pharmacy_claims", "claim_features"} <= set(signed_by_both)


def test_both_engines_produce_the_same_rows(lakehouses):
    mixed, single, _ = lakehouses
    assert single.first_result.success
    tables = _tables(mixed)
    assert [p.relative_to(mixed.settings.lakehouse_root) for p in tables] == [
        p.relative_to(single.settings.lakehouse_root) for p in _tables(single)
    ]
    for path in tables:
        other = Path(single.settings.lakehouse_root) / path.relative_to(mixed.settings.lakehouse_root)
        pd.testing.assert_frame_equal(
            _canonical(path, mixed.settings.lakehouse_root),
            _canonical(other, single.settings.lakehouse_root),
            obj=str(path.relative_to(mixed.settings.lakehouse_root)),
        )


@pytest.mark.engine_fidelity
def test_the_suite_runs_on_the_engine_it_was_asked_for(spark, storage):
    """Guards the classic pass of `make test`: SPARK_ENGINE must reach the session and the storage layer."""
    is_connect = type(spark).__module__.startswith("pyspark.sql.connect")
    assert is_connect == (TEST_ENGINE == "sail")
    assert storage.engine == TEST_ENGINE
    assert storage.has_delta_sql == (TEST_ENGINE == "classic")
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    if TEST_ENGINE == "classic":  # configured as Databricks configures Delta
        assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
        assert spark.conf.get("spark.sql.catalog.spark_catalog").endswith("DeltaCatalog")
        assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
