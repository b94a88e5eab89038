"""Governance scenarios (a) and (b): gated promotion with an audit trail, in a real Dagster instance with a real
MLflow registry, Delta tables and a local HTTP receiver standing in for Slack.

(a) clean data: the member risk model and the fraud autoencoder pass every gate (model checks, evaluation against
    the IsolationForest baseline, disparate impact of the flags, accuracy parity, drift) and become champion; the
    audit log says promoted and nothing is alerted.
(b) the next day lands with the generator's bias knob on (same seed; one region's legitimate claims look odd):
    the same models score it, that region's claims are flagged far more often, the disparate-impact gate fails
    and the registration refuses: the champion of (a) stays, the refusal is audited and alerted.
"""

import json
import threading
from dataclasses import dataclass
from datetime import date
from http.server import ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan
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
from healthcare_assets.assets.risk import (
    FAIRNESS_CHECK_KEY,
    MEMBER_RISK_MODEL_KEY,
    PROMOTION_CHECK_KEYS,
    REGISTERED_RISK_MODEL_KEY,
)
from healthcare_assets.assets.risk import MODEL_NAME as RISK_MODEL_NAME
from healthcare_assets.definitions import build_definitions
from healthcare_assets.domain import fairness
from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource
from healthcare_assets.settings import load_settings

START, DAY, BIASED_DAY = date(2026, 1, 1), date(2026, 1, 5), date(2026, 1, 6)
# Clean data: no bad records (a member lost with a bad eligibility record leaves claims without demographics) and
# enough providers for local care of every specialty in every region (with fewer, a region's members all see
# out-of-region providers and its claims look different for that reason alone).
FRAUD_DATA = {"claims_per_day": 600, "fraud_rate": 0.1, "num_members": 1500, "num_providers": 60, "bad_record_rate": 0}
BIASED_REGION = "Southwest"
# The knob turns on for the day after training, as when a region's providers start coding differently: with the
# odd claims in the training and validation days too, the autoencoders also fall behind the IsolationForest
# baseline (a blocking gate), and the refusal would not isolate the fairness gate.
BIAS_KNOB = {"bias_attribute": "geographic_region", "bias_value": BIASED_REGION, "bias_strength": 0.5}
# Small trees train in seconds. The gate that each autoencoder beats the IsolationForest baseline is close on
# this little data (training is deterministic: rows are ordered by claim id); these settings pass it. Four days of
# history before the held-out DAY keep the flag rate of a new day near 5 % (trained on the lakehouse's first two
# days only, the models flag 8-11 % of the next ones and the biased day's share crosses the scored-table gate).
TRAINING = {
    "catboost": {"iterations": 30, "depth": 4, "holdout_days": 1},
    "xgboost": {"iterations": 100, "depth": 3, "holdout_days": 1},
}
DI_GATE = ("governance/fairness_monitoring", "disparate_impact_within_band")


@dataclass
class Scenario:
    pipeline: Pipeline
    result: dg.ExecuteInProcessResult
    alerts: list  # requests the Slack stand-in received
    clean_alerts: int  # of them, those received by the end of `result`
    biased: dg.ExecuteInProcessResult | None = None  # BIASED_DAY scored and judged with the bias knob on


def _scenario(
    root,
    synthetic: dict,
    data_for: list[dg.AssetKey],
    train: list[dg.AssetKey],
    op_config: dict | None = None,
    judge_biased_day: list[dg.AssetKey] | None = None,
) -> Scenario:
    """Materialises everything `data_for` needs for START..DAY (but `train`), then `train` for DAY in one run;
    with `judge_biased_day`, then lands BIASED_DAY with the bias knob on and materialises those assets for it."""
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
            clean_alerts, biased = len(server.requests), None
            if judge_biased_day:
                # the knob alone changes: same seed and volumes, the next day's feeds through gold, no retraining
                pipeline.synthetic = {**pipeline.synthetic, **BIAS_KNOB}
                gold = dg.AssetSelection.assets(CLAIM_FEATURES_KEY).upstream().required_multi_asset_neighbors()
                assert pipeline.run(BIASED_DAY, selection=list(gold.resolve(graph))).success
                biased = pipeline.run(BIASED_DAY, selection=judge_biased_day)
    finally:
        server.shutdown()
        server.server_close()
    return Scenario(pipeline, result, server.requests, clean_alerts, biased)


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
        judge_biased_day=[*SCORE_KEYS.values(), FAIRNESS_MONITORING_KEY, REGISTERED_FRAUD_MODEL_KEY],
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


def _fairness(scenario: Scenario, day: date):
    table = _table(scenario.pipeline, "fairness_monitoring")
    return table[table["ingest_date"] == day]


def _audit_row(scenario: Scenario, result: dg.ExecuteInProcessResult) -> dict:
    [row] = [r for r in _table(scenario.pipeline, "model_audit_log").to_dict("records") if r["run_id"] == result.run_id]
    return row


def _region_rows(table, region: str = BIASED_REGION):
    return table[(table["attribute"] == "geographic_region") & (table["protected_group"] == region)]


def test_a_clean_data_passes_every_fraud_gate_and_the_better_autoencoder_becomes_champion(fraud):
    assert fraud.result.success, [e.message for e in fraud.result.all_events if e.is_failure]
    assert {"gold/fraud_scores_catboost", "gold/fraud_scores_xgboost"} <= materialized(fraud.result)
    assert {"governance/fairness_monitoring", "fraud/registered_fraud_model"} <= materialized(fraud.result)
    table = _fairness(fraud, DAY)
    assert set(table["model_type"]) == {"catboost", "xgboost"}
    assert set(table["attribute"]) == {"patient_gender", "geographic_region", "patient_age_group"}
    assert not (table["status"] == fairness.BIAS).any()
    assert fairness.MISSING_GROUP not in set(table["protected_group"])  # clean data: every claim has its member
    evaluations = check_results(fraud.result)
    assert evaluations[DI_GATE].passed and evaluations[DI_GATE].metadata["biased_groups"].value == 0
    assert evaluations[("fraud/fraud_model_evaluation", "beats_isolation_forest")].passed

    row = _audit_row(fraud, fraud.result)
    assert row["promoted"] and row["fairness_validated"] and row["reason"] == "every gate passed"
    assert row["model_name"] == FRAUD_MODEL_NAME and row["deployed_by"] == "dagster:__ASSET_JOB"
    gates = _gates(row)
    assert all(gates.values())
    assert {
        "governance/fairness_monitoring:disparate_impact_within_band",
        "fraud/fraud_model_evaluation:beats_isolation_forest",
        "monitoring/drift_summary:composite_drift_within_limit",
        "monitoring/psi_metrics:psi_within_limits",
    } <= set(gates)
    assert sum(g.endswith((":training_data_volume", ":scores_sane")) for g in gates) == 2
    assert fraud.clean_alerts == 0
    event = fraud.pipeline.instance.fetch_materializations(REGISTERED_FRAUD_MODEL_KEY, limit=2).records[-1]
    assert event.run_id == fraud.result.run_id
    assert event.asset_materialization.metadata["champion_version"].value == row["model_version"]


def test_b_the_bias_knob_fails_the_di_gate_and_the_champion_stays(fraud):
    assert fraud.biased is not None and fraud.biased.success  # the refusal is audited and alerted, the run green
    table = _fairness(fraud, BIASED_DAY)
    judged = table[table["status"].isin([fairness.FAIR, fairness.BIAS])]
    outside = (judged["disparate_impact"] < fairness.DI_LOWER) | (judged["disparate_impact"] > fairness.DI_UPPER)
    assert (outside == (judged["status"] == fairness.BIAS)).all()
    # the knob is the cause: with the same models, the biased region's claims are flagged significantly more often
    # than every other region's and than its own the day before (the flags stay the day's top 5 %)
    region, clean_region = _region_rows(table), _region_rows(_fairness(fraud, DAY))
    assert set(region["status"]) == {fairness.BIAS} and (region["disparate_impact"] > fairness.DI_UPPER).all()
    assert (region["chi_square_p_value"] < fairness.CHI_SQUARE_ALPHA).all()
    assert region["flag_rate"].min() > 2 * clean_region["flag_rate"].max()
    regions = table[table["attribute"] == "geographic_region"]
    assert (regions.loc[regions.groupby("model_type")["flag_rate"].idxmax(), "protected_group"] == BIASED_REGION).all()
    for _, model in table.groupby("model_type"):
        per_attribute = model.groupby("attribute")[["flagged", "group_size"]].sum()
        assert (per_attribute["flagged"] / per_attribute["group_size"]).between(0.04, 0.07).all()
    metadata = fraud.pipeline.instance.get_latest_materialization_event(FAIRNESS_MONITORING_KEY)
    metadata = metadata.asset_materialization.metadata
    assert "| model | attribute |" in metadata["report"].value and BIASED_REGION in metadata["report"].value
    assert embedded_chart(metadata["disparate_impact_chart"]) == ("Disparate impact per protected group", (800, 350))

    di = check_results(fraud.biased)[DI_GATE]
    assert not di.passed and di.severity == dg.AssetCheckSeverity.ERROR
    assert di.metadata["biased_groups"].value == int((table["status"] == fairness.BIAS).sum())
    champion_before = _audit_row(fraud, fraud.result)["model_version"]
    row = _audit_row(fraud, fraud.biased)
    registry = _registry(fraud.pipeline)
    assert str(registry.version_with_alias(FRAUD_MODEL_NAME, CHAMPION).version) == champion_before  # unchanged
    assert str(registry.version_with_alias(FRAUD_MODEL_NAME, CHALLENGER).version) == row["model_version"]
    assert row["model_version"] != champion_before and not row["promoted"] and not row["fairness_validated"]
    gates = _gates(row)
    # every other gate passed, as in (a): the bias alone blocks the promotion
    assert [g for g, passed in gates.items() if not passed] == [
        "governance/fairness_monitoring:disparate_impact_within_band"
    ]
    assert "disparate_impact_within_band failed" in row["reason"]
    [(path, _, body)] = fraud.alerts[fraud.clean_alerts :]
    assert path == "/hook" and f"promotion of {FRAUD_MODEL_NAME} blocked" in body["text"]
    event = fraud.pipeline.instance.get_latest_materialization_event(REGISTERED_FRAUD_MODEL_KEY)
    assert event.run_id == fraud.biased.run_id
    assert event.asset_materialization.metadata["promoted"].value is False
    assert event.asset_materialization.metadata["champion_version"].value == champion_before


def test_fail_on_bias_leaves_bias_in_one_attribute_to_the_di_gate(fraud):
    table = _fairness(fraud, BIASED_DAY)
    biased = table[table["status"] == fairness.BIAS].groupby("model_type")["attribute"].unique()
    assert all(list(attributes) == ["geographic_region"] for attributes in biased)  # the knob biases one attribute
    config = {"governance__fairness_monitoring": {"config": {"fail_on_bias": True}}}
    result = fraud.pipeline.run(BIASED_DAY, selection=[FAIRNESS_MONITORING_KEY], op_config=config)
    # more than MAX_BIASED_ATTRIBUTES biased attributes would fail the run; one is the DI gate's to report
    assert result.success and not check_results(result)[DI_GATE].passed


def test_the_risk_promotion_waits_for_its_warning_gate_under_any_executor(tmp_path):
    """The accuracy-parity gate is a WARN check that the promotion reads from the instance: the plan orders it
    before registered_risk_model, so a multiprocess run cannot promote before the gate has judged the model."""
    defs = build_definitions(load_settings({"LAKEHOUSE_ROOT": str(tmp_path), "SPARK_ENGINE": TEST_ENGINE}))
    job = defs.resolve_implicit_global_asset_job_def()
    plan = create_execution_plan(job.get_subset(asset_selection={MEMBER_RISK_MODEL_KEY, REGISTERED_RISK_MODEL_KEY}))
    model = MEMBER_RISK_MODEL_KEY.to_python_identifier()
    [promotion] = [s for s in plan.steps if s.key == REGISTERED_RISK_MODEL_KEY.to_python_identifier()]
    gates = {s.key.removeprefix(f"{model}_") for s in plan.steps if s.key.startswith(f"{model}_")}
    assert FAIRNESS_CHECK_KEY.name in gates and {k.name for k in PROMOTION_CHECK_KEYS} <= gates
    # every gate of the model, metrics and parity alike, runs before the promotion step
    assert promotion.get_execution_dependency_keys() == {model} | {f"{model}_{gate}" for gate in gates}
