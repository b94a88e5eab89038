"""Governance scenarios (a) and (b): gated promotion with an audit trail, in a real Dagster instance with a real
MLflow registry, Delta tables and a local HTTP receiver standing in for Slack.

(a) clean data: the member risk model passes every gate (metrics, accuracy parity, drift) and becomes champion;
    the audit log says promoted and nothing is alerted.
(b) the fraud training run trains both autoencoders, evaluates them, scores a day, checks the fairness of the
    flags, registers the better model as challenger and refuses to promote it because the disparate-impact gate
    fails: on a few hundred claims a day the flag rates per group lie far apart (a 5 % flag rate leaves a handful
    of flags per group). Champion unchanged, audit row not promoted, alert delivered; `fail_on_bias` fails the run.
"""

import json
import threading
from dataclasses import dataclass
from datetime import date
from http.server import ThreadingHTTPServer

import dagster as dg
import pytest
from deltalake import DeltaTable

from assets_tests.embedded_charts import embedded_chart
from assets_tests.pipeline import TEST_ENGINE, Pipeline, check_results, materialized
from assets_tests.receivers import Receiver
from healthcare_assets.assets.fraud import EVALUATION_KEY, MODEL_KEYS, SCORE_KEYS
from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
from healthcare_assets.assets.governance import (
    FAIRNESS_MONITORING_KEY,
    FRAUD_MODEL_NAME,
    REGISTERED_FRAUD_MODEL_KEY,
)
from healthcare_assets.assets.landing import FRAUD_LABELS_KEY
from healthcare_assets.assets.monitoring import DRIFT_SUMMARY_KEY
from healthcare_assets.assets.risk import MEMBER_RISK_MODEL_KEY, REGISTERED_RISK_MODEL_KEY
from healthcare_assets.assets.risk import MODEL_NAME as RISK_MODEL_NAME
from healthcare_assets.definitions import build_definitions
from healthcare_assets.domain import fairness
from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource
from healthcare_assets.settings import load_settings

START, DAY = date(2026, 1, 1), date(2026, 1, 5)
FRAUD_DATA = {"claims_per_day": 600, "fraud_rate": 0.1, "num_members": 1500}
# Small trees train in seconds. The gate that each autoencoder beats the IsolationForest baseline is close on
# this little data (training is deterministic: rows are ordered by claim id); these settings pass it.
TRAINING = {"catboost": {"iterations": 30, "depth": 4}, "xgboost": {"iterations": 100, "depth": 3}}
DI_GATE = ("governance/fairness_monitoring", "disparate_impact_within_band")


@dataclass
class Scenario:
    pipeline: Pipeline
    result: dg.ExecuteInProcessResult
    alerts: list  # requests the Slack stand-in received


def _scenario(
    root, synthetic: dict, data_for: list[dg.AssetKey], train: list[dg.AssetKey], op_config: dict | None = None
) -> Scenario:
    """Materialises everything `data_for` needs for START..DAY (but `train`), then `train` for DAY in one run."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests, server.failures_first = [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    webhook = f"http://127.0.0.1:{server.server_port}/hook"
    pipeline = Pipeline(root / "lakehouse", synthetic=synthetic)
    # alerts go to the local Slack stand-in, configured as a deployment would be: through the environment
    environ = {"LAKEHOUSE_ROOT": pipeline.settings.lakehouse_root, "SPARK_ENGINE": TEST_ENGINE}
    pipeline.settings = load_settings({**environ, "ALERT_CHANNELS": "slack", "SLACK_WEBHOOK_URL": webhook})
    pipeline.defs = build_definitions(pipeline.settings)
    graph = pipeline.defs.resolve_asset_graph()
    data = dg.AssetSelection.assets(*data_for).upstream().required_multi_asset_neighbors().resolve(graph) - set(train)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SLACK_WEBHOOK_URL", webhook)  # the secret is read when the run starts
            assert pipeline.run(START, DAY, selection=list(data)).success
            result = pipeline.run(DAY, selection=train, op_config=op_config)
    finally:
        server.shutdown()
        server.server_close()
    return Scenario(pipeline, result, server.requests)


RISK_DATA = {"num_members": 1500}
RISK_TRAINING = [MEMBER_RISK_MODEL_KEY, REGISTERED_RISK_MODEL_KEY]
FRAUD_TRAINING = [
    *MODEL_KEYS.values(),
    EVALUATION_KEY,
    *SCORE_KEYS.values(),
    FAIRNESS_MONITORING_KEY,
    REGISTERED_FRAUD_MODEL_KEY,
]


@pytest.fixture(scope="module")
def clean_risk(tmp_path_factory):
    # the drift summary too: its gates count for the promotion once evaluated
    return _scenario(tmp_path_factory.mktemp("clean"), RISK_DATA, [*RISK_TRAINING, DRIFT_SUMMARY_KEY], RISK_TRAINING)


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    return _scenario(
        tmp_path_factory.mktemp("fraud"),
        FRAUD_DATA,
        [CLAIM_FEATURES_KEY, FRAUD_LABELS_KEY, DRIFT_SUMMARY_KEY],
        FRAUD_TRAINING,
        {MODEL_KEYS[t].to_python_identifier(): {"config": config} for t, config in TRAINING.items()},
    )


def _table(pipeline: Pipeline, name: str):
    return DeltaTable(pipeline.table("governance", name)).to_pandas()


def _registry(pipeline: Pipeline) -> MlflowResource:
    return MlflowResource(tracking_uri=pipeline.settings.mlflow_tracking_uri)


def _gates(row) -> dict[str, bool]:
    return {g["gate"]: g["passed"] for g in json.loads(row["gate_results"])}


def test_a_clean_data_passes_every_gate_and_the_challenger_becomes_champion(clean_risk):
    assert clean_risk.result.success, [e.message for e in clean_risk.result.all_events if e.is_failure]
    assert "risk/registered_risk_model" in materialized(clean_risk.result)
    registry = _registry(clean_risk.pipeline)
    champion = registry.version_with_alias(RISK_MODEL_NAME, CHAMPION)
    assert champion is not None
    assert champion.version == registry.version_with_alias(RISK_MODEL_NAME, CHALLENGER).version
    [row] = _table(clean_risk.pipeline, "model_audit_log").to_dict("records")
    assert row["promoted"] and row["fairness_validated"] and row["reason"] == "every gate passed"
    assert row["model_name"] == RISK_MODEL_NAME and row["model_version"] == str(champion.version)
    assert row["run_id"] == clean_risk.result.run_id and row["deployed_by"] == "dagster:__ASSET_JOB"
    gates = _gates(row)
    assert all(gates.values())
    assert "risk/member_risk_model:high_risk_accuracy_parity" in gates
    assert "monitoring/drift_summary:composite_drift_within_limit" in gates  # drift was evaluated: it counts
    assert row["psi_score"] is not None and row["psi_score"] >= 0
    assert clean_risk.alerts == []


def test_b_fraud_flags_failing_the_di_gate_block_the_promotion_of_the_better_autoencoder(fraud):
    done = materialized(fraud.result)
    assert {"gold/fraud_scores_catboost", "gold/fraud_scores_xgboost", "governance/fairness_monitoring"} <= done
    table = _table(fraud.pipeline, "fairness_monitoring")
    assert set(table["model_type"]) == {"catboost", "xgboost"} and set(table["ingest_date"]) == {DAY}
    assert set(table["attribute"]) == {"patient_gender", "geographic_region", "patient_age_group"}
    judged = table[table["status"].isin([fairness.FAIR, fairness.BIAS])]
    outside = (judged["disparate_impact"] < fairness.DI_LOWER) | (judged["disparate_impact"] > fairness.DI_UPPER)
    assert (outside == (judged["status"] == fairness.BIAS)).all() and outside.any()
    for _, model in table.groupby("model_type"):  # flags = the day's top 5 %
        per_attribute = model.groupby("attribute")[["flagged", "group_size"]].sum()
        assert (per_attribute["flagged"] / per_attribute["group_size"]).between(0.04, 0.07).all()
    metadata = fraud.pipeline.instance.get_latest_materialization_event(FAIRNESS_MONITORING_KEY)
    metadata = metadata.asset_materialization.metadata
    assert "| model | attribute |" in metadata["report"].value
    assert embedded_chart(metadata["disparate_impact_chart"]) == ("Disparate impact per protected group", (800, 350))

    di = check_results(fraud.result)[DI_GATE]
    assert not di.passed and di.severity == dg.AssetCheckSeverity.ERROR
    assert di.metadata["biased_groups"].value == int((table["status"] == fairness.BIAS).sum())
    assert fraud.result.success  # the refusal is recorded and alerted; the champion stays
    registry = _registry(fraud.pipeline)
    challenger = registry.version_with_alias(FRAUD_MODEL_NAME, CHALLENGER)
    assert challenger is not None and registry.version_with_alias(FRAUD_MODEL_NAME, CHAMPION) is None
    [row] = _table(fraud.pipeline, "model_audit_log").to_dict("records")
    assert not row["promoted"] and not row["fairness_validated"] and row["model_version"] == str(challenger.version)
    gates = _gates(row)
    assert gates["governance/fairness_monitoring:disparate_impact_within_band"] is False
    assert gates["fraud/fraud_model_evaluation:beats_isolation_forest"] is True
    assert [g for g, passed in gates.items() if not passed] == [
        "governance/fairness_monitoring:disparate_impact_within_band"
    ]
    [(path, _, body)] = fraud.alerts
    assert f"promotion of {FRAUD_MODEL_NAME} blocked" in body["text"]


def test_fail_on_bias_fails_the_fairness_run_when_more_than_one_attribute_is_biased(fraud):
    table = _table(fraud.pipeline, "fairness_monitoring")
    biased = table[table["status"] == fairness.BIAS].groupby("model_type")["attribute"].nunique()
    assert biased.max() > fairness.MAX_BIASED_ATTRIBUTES  # the day's flags are biased in several attributes
    config = {"governance__fairness_monitoring": {"config": {"fail_on_bias": True}}}
    result = fraud.pipeline.run(DAY, selection=[FAIRNESS_MONITORING_KEY], op_config=config)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.to_string()
    assert "fail_on_bias" in message and DAY.isoformat() in message
    # without the flag the same day materialises (the DI gate reports the bias instead)
    assert fraud.pipeline.run(DAY, selection=[FAIRNESS_MONITORING_KEY]).success
