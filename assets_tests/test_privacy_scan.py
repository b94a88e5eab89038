"""Direct identifiers never leave bronze in clear text, and the pseudonymisation key is never optional when deployed.

One pipeline run on generated data covers the whole graph, model training included: the medallion
tables, both fraud autoencoders (evaluated, scored, registered) and the member risk models
(registered, promoted, scoring). The fraud promotion is refused (its fairness gate was not
evaluated in this run), which alerts over Slack, e-mail and PagerDuty to local receivers.
Every raw identifier the landing files delivered (member ids, names, dates of birth, addresses)
is then looked for in every Delta table beyond bronze, every event of the run (messages,
metadata, errors, tags, config), everything in the MLflow tracking store and registry
(params, tags, metric names, every artifact file including pickled models) and the exact
bytes every alert channel received. The scanner itself is tested on planted leaks, so a scan
that finds nothing means something.
"""

import gzip
import io
import os
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from assets_tests import receivers
from assets_tests.phi_scan import PhiScanner, run_texts
from assets_tests.pipeline import TEST_ENGINE, Pipeline, materialized
from healthcare_assets.assets.fraud import MODEL_KEYS
from healthcare_assets.assets.governance import FAIRNESS_MONITORING_KEY, FRAUD_MODEL_NAME
from healthcare_assets.definitions import build_definitions
from healthcare_assets.environments import RUNTIME_VARIABLE
from healthcare_assets.settings import LOCAL_DEVELOPMENT_KEY, load_settings

D1, D4 = date(2026, 1, 1), date(2026, 1, 4)
DAGSTER = str(Path(sys.executable).with_name("dagster"))
# Three training days (the fourth is held out) reach the fraud models' training_data_volume gate (200 claims fitted,
# 100 calibrating) and are history enough for their thresholds to carry over to the held-out day (trained on the
# lakehouse's first day alone, they flag about a fifth of the second); labelled fraud on the held-out day lets the
# evaluation run. Small trees train in seconds.
SYNTHETIC = {"claims_per_day": 250, "fraud_rate": 0.1}
FRAUD_CONFIG = {"holdout_days": 1, "iterations": 20, "depth": 3}
FRAUD_TRAINING = {MODEL_KEYS[t].to_python_identifier(): {"config": FRAUD_CONFIG} for t in MODEL_KEYS}
SECRETS = {"SLACK_WEBHOOK_URL": "/hook", "PAGERDUTY_ROUTING_KEY": "R0UT1NG-privacy-scan"}


@dataclass
class Delivered:
    """Alert bodies as the local receivers got them, byte for byte."""

    http: list[bytes]
    mail: list[bytes]


@pytest.fixture(scope="module")
def alerted(tmp_path_factory):
    """The pipeline with alerts on every channel; the run is made while the receivers listen."""
    with receivers.serving_http() as http, receivers.serving_smtp() as (smtp, mailbox):
        base = f"http://127.0.0.1:{http.server_port}"
        secrets = {**SECRETS, "SLACK_WEBHOOK_URL": base + SECRETS["SLACK_WEBHOOK_URL"]}
        pipeline = Pipeline(tmp_path_factory.mktemp("privacy") / "lakehouse", synthetic=SYNTHETIC)
        environ = {
            "LAKEHOUSE_ROOT": pipeline.settings.lakehouse_root,
            "SPARK_ENGINE": TEST_ENGINE,
            "ALERT_CHANNELS": "slack,email,pagerduty",
            "PAGERDUTY_EVENTS_URL": f"{base}/v2/enqueue",
            "ALERT_SMTP_HOST": "127.0.0.1",
            "ALERT_SMTP_PORT": str(smtp.port),
            "ALERT_SMTP_STARTTLS": "false",
            "ALERT_EMAIL_FROM": "mlops@example.org",
            "ALERT_EMAIL_TO": "oncall@example.org",
            **secrets,
        }
        pipeline.settings = load_settings(environ)
        pipeline.defs = build_definitions(pipeline.settings)
        # everything but the fairness monitoring: the fraud promotion is then refused and alerted
        selection = [k for k in pipeline.defs.resolve_all_asset_keys() if k != FAIRNESS_MONITORING_KEY]
        with pytest.MonkeyPatch.context() as env:
            for name, value in secrets.items():
                env.setenv(name, value)  # the secrets are read when the run starts
            result = pipeline.run(D1, D4, selection=selection, op_config=FRAUD_TRAINING)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        assert {"fraud/registered_fraud_model", "risk/registered_risk_model", "gold/fraud_scores_xgboost"} <= (
            materialized(result)
        )
        return pipeline, Delivered(list(http.bodies), [content for *_, content in mailbox.messages])


@pytest.fixture(scope="module")
def pipeline(alerted):
    return alerted[0]


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
    assert not findings, "\n".join(map(str, findings))


def test_nothing_in_the_mlflow_tracking_store_or_registry_holds_a_direct_identifier(pipeline, scanner):
    tracking_uri = pipeline.settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiments = {e.name.rsplit("/", 1)[-1] for e in client.search_experiments()}
    assert {"claims_fraud_autoencoder", "member_risk"} <= experiments  # both models trained in this run
    assert {m.name for m in client.search_registered_models()} == {FRAUD_MODEL_NAME, "member_risk_model"}
    scanned: list[str] = []
    findings = scanner.mlflow(tracking_uri, scanned)
    # the model files themselves were looked at, not just the run's side files
    names = {Path(name).name for name in scanned}
    assert {"MLmodel", "input_example.json", "serving_input_example.json", "python_model.pkl"} <= names
    assert "claims_tree_autoencoder.pkl" in names and "accuracy_by_group.json" in names
    assert not findings, "\n".join(map(str, findings))


def test_no_delivered_alert_holds_a_direct_identifier(alerted, scanner):
    _, delivered = alerted
    # the refused fraud promotion reached every channel: Slack and PagerDuty over HTTP, e-mail over SMTP
    assert len(delivered.http) == 2 and len(delivered.mail) == 1
    assert all(FRAUD_MODEL_NAME.encode() in body for body in [*delivered.http, *delivered.mail])
    findings = scanner.payloads("http alert", delivered.http) + scanner.payloads("e-mail alert", delivered.mail)
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

    # binary and packed artifacts, a logged model's files and the registry are scanned too
    before = set(map(str, scanner.mlflow(tracking_uri)))
    binaries = tmp_path / "binaries"
    binaries.mkdir()
    (binaries / "model.pkl").write_bytes(pickle.dumps({"example_member": address}))
    (binaries / "values.gz").write_bytes(gzip.compress(f"born {birth}".encode()))
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner/model.ubj", b"\x00\x01" + member_id.encode() + b"\xff")
    (binaries / "model.zip").write_bytes(packed.getvalue())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(binaries), "model_files")
        model = mlflow.initialize_logged_model(name="scan_model", tags={"trained_for": full_name})
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.log_model_artifact(model.model_id, str(binaries / "model.pkl"))
    client.create_registered_model("scan_model", description=f"validated on {member_id}")
    client.create_model_version("scan_model", f"runs:/{run.info.run_id}/model_files", tags={"owner": full_name})
    new = {str(f) for f in scanner.mlflow(tracking_uri)} - before
    assert sorted(new) == sorted(
        [
            f"member_id in clear text at mlflow run {run.info.run_id[:8]} artifact model_files/model.zip!inner/model.ubj",
            f"date_of_birth in clear text at mlflow run {run.info.run_id[:8]} artifact model_files/values.gz!gunzip",
            f"street_address in clear text at mlflow run {run.info.run_id[:8]} artifact model_files/model.pkl",
            f"full_name in clear text at mlflow logged model {model.model_id}",
            f"street_address in clear text at mlflow logged model {model.model_id} artifact model.pkl",
            "member_id in clear text at mlflow registered model scan_model",
            "full_name in clear text at mlflow registered model scan_model version 1",
        ]
    )
    assert not [f for f in new if member_id in f or full_name in f or address in f or birth in f]

    # alert bodies: the identifier is found in the raw bytes and behind a transfer encoding
    message = EmailMessage()
    message["Subject"] = "[ERROR] promotion blocked"
    message.set_content(f"member {full_name} é", cte="base64")
    raw = message.as_bytes()
    assert full_name.encode() not in raw  # hidden by base64
    assert [f.kind for f in scanner.payloads("mail", [raw])] == ["full_name"]
    assert [f.kind for f in scanner.payloads("http", [f'{{"text": "{address}"}}'.encode()])] == ["street_address"]


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
