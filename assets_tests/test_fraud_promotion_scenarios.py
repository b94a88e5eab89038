"""Governance scenarios (a) and (b) on the fraud models, in a real Dagster instance with a real MLflow registry.

(a) clean data: the fraud training run trains both autoencoders, evaluates them, scores a day, checks the fairness
    of the flags and promotes the better model: it becomes champion and the audit log says promoted.
(b) the generator's bias knob makes one region's legitimate claims look unusual (rarer procedure codes and more
    spread in billed amounts, as with a region whose providers code differently), so the autoencoders over-flag
    that region: the disparate-impact gate fails, the champion stays unchanged, the audit log says not promoted
    and a local HTTP receiver standing in for Slack gets the alert.
"""

import json
import threading
from dataclasses import dataclass
from datetime import date
from http.server import ThreadingHTTPServer

import dagster as dg
import pytest
from deltalake import DeltaTable

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
from healthcare_assets.definitions import build_definitions
from healthcare_assets.domain import fairness
from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource
from healthcare_assets.settings import load_settings

START, DAY = date(2026, 1, 1), date(2026, 1, 5)
SCENARIO_DATA = {"claims_per_day": 600, "fraud_rate": 0.1, "num_members": 1500}
BIAS = {"bias_attribute": "geographic_region", "bias_value": "Southwest", "bias_strength": 1.0}
# small trees: training takes seconds, and the gates judge the models, not their polish
TRAINING = {"config": {"iterations": 30, "depth": 4}}
DI_GATE = ("governance/fairness_monitoring", "disparate_impact_within_band")


@dataclass
class Scenario:
    pipeline: Pipeline
    result: dg.ExecuteInProcessResult
    alerts: list  # requests the Slack stand-in received


def _scenario(root, synthetic: dict) -> Scenario:
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
    data = (
        dg.AssetSelection.assets(CLAIM_FEATURES_KEY, FRAUD_LABELS_KEY, DRIFT_SUMMARY_KEY)
        .upstream()
        .required_multi_asset_neighbors()
        .resolve(graph)
    )
    training = [*MODEL_KEYS.values(), EVALUATION_KEY, *SCORE_KEYS.values(), FAIRNESS_MONITORING_KEY]
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SLACK_WEBHOOK_URL", webhook)  # the secret is read when the run starts
            assert pipeline.run(START, DAY, selection=list(data)).success
            result = pipeline.run(
                DAY,
                selection=[*training, REGISTERED_FRAUD_MODEL_KEY],
                op_config={MODEL_KEYS[t].to_python_identifier(): TRAINING for t in MODEL_KEYS},
            )
    finally:
        server.shutdown()
        server.server_close()
    return Scenario(pipeline, result, server.requests)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _scenario(tmp_path_factory.mktemp("clean"), SCENARIO_DATA)


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    return _scenario(tmp_path_factory.mktemp("biased"), {**SCENARIO_DATA, **BIAS})


def _audit(pipeline: Pipeline):
    return DeltaTable(pipeline.table("governance", "model_audit_log")).to_pandas()


def _fairness(pipeline: Pipeline):
    return DeltaTable(pipeline.table("governance", "fairness_monitoring")).to_pandas()


def _registry(pipeline: Pipeline) -> MlflowResource:
    return MlflowResource(tracking_uri=pipeline.settings.mlflow_tracking_uri)


def test_a_clean_data_passes_every_gate_and_the_challenger_becomes_champion(clean):
    table = _fairness(clean.pipeline)
    print(
        table[table["status"] != fairness.INSUFFICIENT_DATA][
            ["model_type", "attribute", "protected_group", "group_size", "flag_rate", "disparate_impact", "status"]
        ].to_string()
    )
    assert clean.result.success, [e.message for e in clean.result.all_events if e.is_failure]
    assert {"governance/fairness_monitoring", "fraud/registered_fraud_model"} <= materialized(clean.result)
    assert check_results(clean.result)[DI_GATE].passed
    registry = _registry(clean.pipeline)
    champion = registry.version_with_alias(FRAUD_MODEL_NAME, CHAMPION)
    assert champion is not None
    assert champion.version == registry.version_with_alias(FRAUD_MODEL_NAME, CHALLENGER).version
    [row] = _audit(clean.pipeline).to_dict("records")
    assert row["promoted"] and row["fairness_validated"] and row["reason"] == "every gate passed"
    assert row["model_name"] == FRAUD_MODEL_NAME and row["model_version"] == str(champion.version)
    assert row["run_id"] == clean.result.run_id and row["deployed_by"] == "dagster:__ASSET_JOB"
    gates = {g["gate"]: g for g in json.loads(row["gate_results"])}
    assert all(g["passed"] for g in gates.values())
    assert "governance/fairness_monitoring:disparate_impact_within_band" in gates
    assert "fraud/fraud_model_evaluation:beats_isolation_forest" in gates
    assert "monitoring/drift_summary:composite_drift_within_limit" in gates  # drift evaluated: it counts
    assert clean.alerts == []


def test_b_biased_flags_fail_the_di_gate_and_block_the_promotion(biased):
    table = _fairness(biased.pipeline)
    print(
        table[table["status"] != fairness.INSUFFICIENT_DATA][
            ["model_type", "attribute", "protected_group", "group_size", "flag_rate", "disparate_impact", "status"]
        ].to_string()
    )
    di = check_results(biased.result)[DI_GATE]
    assert not di.passed and di.severity == dg.AssetCheckSeverity.ERROR
    assert not biased.result.success
    registry = _registry(biased.pipeline)
    assert registry.version_with_alias(FRAUD_MODEL_NAME, CHAMPION) is None
    assert registry.version_with_alias(FRAUD_MODEL_NAME, CHALLENGER) is not None
    [row] = _audit(biased.pipeline).to_dict("records")
    assert not row["promoted"] and not row["fairness_validated"]
    assert "disparate_impact_within_band failed" in row["reason"]
    [(path, _, body)] = biased.alerts
    assert path == "/hook" and f"promotion of {FRAUD_MODEL_NAME} blocked" in body["text"]
