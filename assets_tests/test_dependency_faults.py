"""Failing dependencies give clear errors and leave nothing half-written.

* MLflow tracking server unreachable: the error names the tracking URI and the refused connection.
* The embedded Spark server failing to start: the error says so and gives the cause.
* Disk full (a 4 MiB tmpfs as the lakehouse): the write fails with the OS error and the table
  stays readable at its previous version with its previous rows.
"""

import contextlib
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.mlflow import MlflowResource

D1 = date(2026, 1, 1)


def _dead_port() -> int:
    with socket.socket() as probe:  # a port that was free a moment ago and that nothing listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_mlflow_tracking_server_fails_clearly(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{_dead_port()}"
    mlflow = MlflowResource(tracking_uri=uri)
    with pytest.raises(Exception, match="Connection refused") as error:
        mlflow.experiment_id("fraud_detection")
    assert uri in str(error.value)


@contextlib.contextmanager
def _tiny_disk(path: Path, size: str):
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to simulate a full disk: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_fails_the_write_and_keeps_the_previous_version(spark, tmp_path):
    ref = TableRef("silver", "medical_claims")
    with _tiny_disk(tmp_path / "small_disk", "4m") as root:
        storage = DeltaStorage(spark, str(root))
        small = spark.range(100).selectExpr("id", "DATE'2026-01-01' AS ingest_date")
        storage.replace_days(small, ref, D1, D1)
        # random strings do not compress: far more than the disk holds
        big = spark.range(2_000_000).selectExpr("id", "uuid() AS payload", "DATE'2026-01-01' AS ingest_date")
        with pytest.raises(Exception, match="(?i)no space left on device|os error 28"):
            storage.replace_days(big, ref, D1, D1)
        table = DeltaTable(storage.path(ref))
        assert table.version() == 0
        assert len(table.to_pandas()) == 100
        assert storage.count(ref) == 100


def test_a_spark_server_that_cannot_start_fails_with_the_cause():
    # an invalid Sail setting makes the embedded server refuse to start, as a failed bind would
    env = {**os.environ, "SAIL_MODE": "not-a-mode"}
    started = subprocess.run(
        [sys.executable, "-c", "from healthcare_assets.resources.spark import get_session; get_session('sail')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode != 0
    assert "the embedded Sail Spark server failed to start" in started.stderr
    assert "SAIL_" in started.stderr  # the cause names the setting to fix
