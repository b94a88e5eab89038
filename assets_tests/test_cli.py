"""The documented Dagster CLI recipes (docs/cli.md), run as CI runs them: the real `dagster` command in a subprocess.

The commands come from the first bash block of docs/cli.md, so the docs and tests cannot drift:
every line of that block runs, in order, against a throw-away instance and lakehouse.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from healthcare_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGSTER = str(BIN / "dagster")
MODULE = ["-m", "healthcare_assets.definitions"]
pytestmark = pytest.mark.slow


def documented_cli_commands(page: str) -> list[str]:
    """The commands of the page's first bash block, continuation lines joined, comments dropped."""
    block = re.search(r"```bash\n(.*?)\n```", page, re.DOTALL)
    assert block, "docs/cli.md has no ```bash block"
    joined = re.sub(r"\\\n\s*", "", block.group(1))
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


COMMANDS = documented_cli_commands((ROOT / "docs" / "cli.md").read_text())


def _key(command: str) -> str:
    """A short name for a recipe: its subcommand and, for jobs, the job."""
    words = shlex.split(command)
    if words[0].endswith("python"):
        return words[-1]
    name = " ".join(words[1:3])
    return f"{name} {words[words.index('-j') + 1]}" if "-j" in words else name


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "LAKEHOUSE_ROOT": str(tmp / "lakehouse")}


@pytest.fixture(scope="module")
def recipes(cli_env) -> dict[str, subprocess.CompletedProcess]:
    """Runs every documented recipe once, in order; recipe name -> its completed process."""
    results: dict[str, subprocess.CompletedProcess] = {}
    for command in COMMANDS:
        if command.startswith("export "):
            continue  # the environment (DAGSTER_HOME) is the test's throw-away instance
        executable = command.replace(".venv/bin/", f"{BIN}/", 1)
        key = _key(command)
        if key == "asset materialize" and "--partition-range" in command:
            key = "asset materialize range"
        results[key] = subprocess.run(
            ["bash", "-c", executable], cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=900
        )
    return results


def _days(env, schema: str, table: str) -> set[str]:
    frame = DeltaTable(str(Path(env["LAKEHOUSE_ROOT"]) / schema / table)).to_pandas()
    return set(frame["ingest_date"].astype(str))


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_the_documented_block_has_every_recipe_and_sets_the_instance():
    assert "export DAGSTER_HOME=$PWD/.dagster_home" in COMMANDS
    assert [_key(c) for c in COMMANDS if not c.startswith("export ")] == [
        "definitions validate",
        "asset list",
        "asset materialize",
        "asset materialize",
        "job execute data_quality_checks",
        "job execute daily_pipeline",
        "healthcare_assets.report",
    ]


def test_validate(recipes):
    _ok(recipes["definitions validate"])
    result = recipes["definitions validate"]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_asset_list_shows_every_asset(recipes):
    _ok(recipes["asset list"])
    listed = set(recipes["asset list"].stdout.split())
    assert {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()} <= listed


def test_materialise_one_day_through_gold_with_its_checks(recipes, cli_env):
    result = recipes["asset materialize"]
    _ok(result)
    assert _days(cli_env, "gold", "claim_features") >= {"2026-01-01"}
    assert "ASSET_CHECK_EVALUATION" in result.stdout + result.stderr


def test_backfill_a_range_as_one_run(recipes, cli_env):
    result = recipes["asset materialize range"]
    _ok(result)
    assert _days(cli_env, "bronze", "medical_claims") == {"2026-01-01", "2026-01-02", "2026-01-03"}
    assert (result.stdout + result.stderr).count("RUN_SUCCESS") == 1


def test_run_the_quality_gates_job_for_a_range(recipes):
    result = recipes["job execute data_quality_checks"]
    _ok(result)
    output = result.stdout + result.stderr
    assert "landing_reconciles" in output and "RUN_SUCCESS" in output


def test_run_the_daily_pipeline_job_for_a_day(recipes, cli_env):
    _ok(recipes["job execute daily_pipeline"])
    assert _days(cli_env, "gold", "claim_features") == {"2026-01-01", "2026-01-02"}


def test_report_shows_the_tables_and_gates(recipes):
    result = recipes["healthcare_assets.report"]
    _ok(result)
    assert "gold.claim_features" in result.stdout
    assert "Gates:" in result.stdout
    # warnings may fire on generated data (e.g. a claim whose member's enrolment line was quarantined); errors not
    assert not re.search(r"^\s+(FAILED|EXECUTION FAILED) ", result.stdout, re.MULTILINE), result.stdout


def test_definitions_validate_fails_clearly_on_bad_configuration(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "HEALTHCARE_ENV": "prod"}
    env.pop("PSEUDONYMISATION_KEY", None)
    result = subprocess.run([DAGSTER, "definitions", "validate", *MODULE], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "DATABRICKS_HOST is not set" in result.stdout + result.stderr


def test_make_run_materialises_the_whole_graph_and_reports_it(tmp_path):
    """The README's main command on its default window, into a throw-away lakehouse and instance.

    A shorter window is not a smaller version of it: with one or two days to train on, the fraud models meet claims
    with more history than any they trained on, and the flag-rate gates rightly block them."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "LAKEHOUSE_ROOT": str(tmp_path / "lakehouse")}
    stray_store = ROOT / "mlflow.db"  # what an MLflow client pointed at no store creates in its working directory
    existed = stray_store.exists()
    result = subprocess.run(
        ["make", "-C", str(ROOT), "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # every job of the graph, training and serving included
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for table in ("bronze.quarantine", "silver.dim_members", "gold.claim_features", "gold.member_features"):
        assert table in result.stdout
    assert "Gates:" in result.stdout
    assert DeltaTable(str(tmp_path / "lakehouse" / "gold" / "claim_features")).version() == 0
    # the named jobs ran (the UI's overview and jobs pages show them), and the report followed
    for job in ("daily_pipeline", "risk_model_training", "fraud_model_training", "daily_scoring", "governance_reports"):
        assert f"== {job}" in result.stdout
    assert (tmp_path / "lakehouse" / "governance" / "gate_summary" / "_delta_log").is_dir()
    assert existed or not stray_store.exists()
