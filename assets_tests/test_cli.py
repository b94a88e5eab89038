"""The README's Dagster CLI recipes, run as CI runs them: the real `dagster` command in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

DAGSTER = str(Path(sys.executable).with_name("dagster"))
MODULE = ["-m", "healthcare_assets.definitions"]
pytestmark = pytest.mark.slow


@pytest.fixture
def cli_env(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "LAKEHOUSE_ROOT": str(tmp_path / "lakehouse")}


def _dagster(env, *args, timeout=600):
    return subprocess.run([DAGSTER, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_definitions_validate(cli_env):
    result = _dagster(cli_env, "definitions", "validate", *MODULE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_definitions_validate_fails_clearly_on_bad_configuration(cli_env):
    result = _dagster({**cli_env, "HEALTHCARE_ENV": "prod"}, "definitions", "validate", *MODULE)
    assert result.returncode != 0
    assert "DATABRICKS_HOST is not set" in result.stdout + result.stderr


def test_asset_list_shows_every_layer(cli_env):
    result = _dagster(cli_env, "asset", "list", *MODULE)
    assert result.returncode == 0, result.stderr[-2000:]
    for key in ("landing/medical_claims", "bronze/quarantine", "silver/dim_members", "gold/claim_features"):
        assert key in result.stdout


def test_materialize_one_partition_then_report(cli_env, tmp_path):
    result = _dagster(
        cli_env, "asset", "materialize", *MODULE, "--select", "group:landing,group:bronze", "--partition", "2026-01-01"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bronze = DeltaTable(str(tmp_path / "lakehouse" / "bronze" / "medical_claims")).to_pandas()
    assert len(bronze) > 0 and set(bronze["ingest_date"].astype(str)) == {"2026-01-01"}
    report = subprocess.run(
        [sys.executable, "-m", "healthcare_assets.report"], env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0
    assert "bronze.medical_claims" in report.stdout
    assert "Gates:" in report.stdout and "0 failed" in report.stdout


def test_make_run_materialises_the_whole_graph_and_reports_it(tmp_path):
    """The README's main command, on a two-day window, into a throw-away lakehouse and instance."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "LAKEHOUSE_ROOT": str(tmp_path / "lakehouse")}
    result = subprocess.run(
        ["make", "-C", str(root), "run", "DEMO_START=2026-01-01", "DEMO_END=2026-01-02"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for table in ("bronze.quarantine", "silver.dim_members", "gold.claim_features", "gold.member_features"):
        assert table in result.stdout
    assert "Gates:" in result.stdout
    assert DeltaTable(str(tmp_path / "lakehouse" / "gold" / "claim_features")).version() == 0
