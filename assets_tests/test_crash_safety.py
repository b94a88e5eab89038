"""A run killed in the middle of a Delta write leaves the table at its previous version; the rerun completes.

The writer is a separate process (the run process of a materialisation: its embedded Spark
engine dies with it), killed with SIGKILL as soon as the first data file of its write
appears in the table folder, i.e. after the write started and before it could commit.
"""

import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from healthcare_assets.resources.delta import TableRef

pytestmark = pytest.mark.slow
REF = TableRef("silver", "crash_test")
D1, D2 = date(2026, 1, 1), date(2026, 1, 2)

WRITER = """
import sys
from datetime import date
from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.spark import get_session

root, rows = sys.argv[1], int(sys.argv[2])
spark = get_session("sail")
frame = spark.range(rows).repartition(16).selectExpr(
    "id", "cast(id * 7 AS string) AS payload", "DATE'2026-01-02' AS ingest_date"
)
DeltaStorage(spark, root).replace_days(frame, TableRef("silver", "crash_test"), date(2026, 1, 2), date(2026, 1, 2))
print("committed", flush=True)
"""


def _data_files(table: Path) -> set[Path]:
    return {p for p in table.rglob("*") if p.is_file() and "_delta_log" not in p.parts} | {
        p for p in (table / "_delta_log").glob("*") if not p.name.endswith((".json", ".crc", ".checkpoint.parquet"))
    }


def _rows_by_day(table: Path) -> dict[str, int]:
    frame = DeltaTable(str(table)).to_pandas()
    return frame["ingest_date"].astype(str).value_counts().to_dict()


def _write(root: Path, rows: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(rows)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_sigkill_during_a_delta_write_keeps_the_previous_version_and_the_rerun_completes(spark, storage):
    initial = spark.range(1000).selectExpr("id", "cast(id AS string) AS payload", "DATE'2026-01-01' AS ingest_date")
    initial = initial.unionByName(initial.selectExpr("id", "payload", "DATE'2026-01-02' AS ingest_date"))
    storage.replace_days(initial, REF, D1, D2)
    table = Path(storage.path(REF))
    before = _data_files(table)
    assert DeltaTable(str(table)).version() == 0

    writer = _write(Path(storage.root), 20_000_000)
    deadline = time.monotonic() + 300
    while not (_data_files(table) - before):
        assert writer.poll() is None, "the write ended before any of its files was seen"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    writer.send_signal(signal.SIGKILL)
    stdout, _ = writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL and b"committed" not in stdout

    # the half-written files exist but no commit references them: readers see version 0, unchanged
    leftovers = _data_files(table) - before
    assert leftovers
    after_kill = DeltaTable(str(table))
    assert after_kill.version() == 0
    assert not {Path(uri.removeprefix("file://")).name for uri in after_kill.file_uris()} & {p.name for p in leftovers}
    assert _rows_by_day(table) == {"2026-01-01": 1000, "2026-01-02": 1000}
    assert storage.count(REF) == 2000  # and through the engine

    rerun = _write(Path(storage.root), 5000)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr.decode()[-2000:]
    assert DeltaTable(str(table)).version() == 1
    assert _rows_by_day(table) == {"2026-01-01": 1000, "2026-01-02": 5000}
    assert storage.count(REF, D2, D2) == 5000
