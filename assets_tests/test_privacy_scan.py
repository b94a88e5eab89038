"""Direct identifiers never leave bronze in clear text, and the pseudonymisation key is never optional when deployed.

The pipeline runs on generated data; every raw identifier the landing files delivered
(member ids, names, dates of birth, addresses) is then looked for in every Delta table
beyond bronze and in every event of every run (messages, metadata, errors, tags, config).
The scanner itself is tested on planted leaks, so a scan that finds nothing means something.
"""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from assets_tests.phi_scan import PhiScanner, run_texts
from assets_tests.pipeline import Pipeline
from healthcare_assets.environments import RUNTIME_VARIABLE
from healthcare_assets.settings import LOCAL_DEVELOPMENT_KEY

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)
DAGSTER = str(Path(sys.executable).with_name("dagster"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("lakehouse"))
    assert pipeline.run(D1, D2).success
    return pipeline


@pytest.fixture(scope="module")
def scanner(pipeline):
    return PhiScanner.from_landing(pipeline.settings.landing_root)


def test_the_scanner_knows_the_delivered_identifiers(scanner):
    for kind in ("member_id", "full_name", "street_address", "date_of_birth", "first_name", "zip_code"):
        assert scanner.count(kind) > 50, kind


def test_no_table_beyond_bronze_holds_a_direct_identifier(pipeline, scanner):
    root = Path(pipeline.settings.lakehouse_root)
    scanned = [p.parent for p in root.glob("*/*/_delta_log") if p.parent.parent.name not in ("landing", "bronze")]
    assert len(scanned) >= 7  # silver and gold tables exist
    findings = scanner.lakehouse(root)
    assert not findings, "\n".join(map(str, findings))


def test_no_event_metadata_or_message_of_any_run_holds_a_direct_identifier(pipeline, scanner):
    runs = pipeline.instance.get_runs()
    assert len(runs) == 1
    findings = [finding for run in runs for finding in scanner.dagster_run(pipeline.instance, run.run_id)]
    # later scopes go here, one line each:
    #   findings += scanner.mlflow(tracking_uri)                  (every MLflow param, tag, metric name, artifact)
    #   findings += scanner.texts("alert payloads", payloads)     (every alert body a channel sent)
    assert not findings, "\n".join(map(str, findings))


def test_the_pseudonymisation_key_never_appears_in_run_events(pipeline):
    texts = [text for run in pipeline.instance.get_runs() for text in run_texts(pipeline.instance, run.run_id)]
    assert texts and not [text for text in texts if LOCAL_DEVELOPMENT_KEY in text]


def test_the_scanner_finds_planted_leaks_in_every_scope(pipeline, scanner, spark, tmp_path):
    member_id = sorted(scanner.identifiers["member_id"])[0]
    full_name = sorted(scanner.identifiers["full_name"])[0]
    address = sorted(scanner.identifiers["street_address"])[0]
    birth = sorted(scanner.identifiers["date_of_birth"])[0]

    leaked = tmp_path / "lakehouse"
    spark.createDataFrame([(member_id, 1)], "member_ref string, n int").write.format("delta").save(
        str(leaked / "gold" / "leaky")
    )
    spark.createDataFrame([(member_id, 1)], "member_ref string, n int").write.format("delta").save(
        str(leaked / "bronze" / "allowed")
    )
    assert [(f.where, f.kind) for f in scanner.lakehouse(leaked)] == [("gold.leaky.member_ref", "member_id")]

    assert {f.kind for f in scanner.texts("log", [f"scored {full_name} born {birth}", "clean line"])} == {
        "full_name",
        "date_of_birth",
    }
    assert scanner.texts("log", [f"{member_id}X", f"claims of X{member_id}"]) == []  # whole tokens only

    @dg.asset
    def leaky_asset(context: dg.AssetExecutionContext):
        context.log.info("processing")
        return dg.MaterializeResult(metadata={"example": address})

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([leaky_asset], instance=instance)
    assert {f.kind for f in scanner.dagster_run(instance, result.run_id)} == {"street_address"}

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("scan", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_param("segment", "all members")
    assert scanner.mlflow(tracking_uri) == []
    with mlflow.start_run(experiment_id=experiment):
        mlflow.set_tag("example_member", member_id)
        mlflow.log_text(f"explanation for {full_name}", "explanations/top.txt")
    assert sorted(f.kind for f in scanner.mlflow(tracking_uri)) == ["full_name", "member_id"]


def _validate(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "healthcare_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_deployed_step_refuses_to_start_without_the_hmac_key(tmp_path):
    """Deployed, steps run on Databricks (the runtime sets DATABRICKS_RUNTIME_VERSION) and need the key there."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k != "PSEUDONYMISATION_KEY"}
    env.update({"DAGSTER_HOME": str(home), "HEALTHCARE_ENV": "dev", RUNTIME_VARIABLE: "16.4"})
    result = _validate(env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "PSEUDONYMISATION_KEY is not set" in output
