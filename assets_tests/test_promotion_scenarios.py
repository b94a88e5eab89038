"""Governance scenarios (a) and (b): gated promotion with an audit trail, in a real Dagster instance with a real
MLflow registry, Delta tables and a local HTTP receiver standing in for Slack.

(a) clean data: the member risk model and the fraud autoencoder pass every gate (model checks, evaluation against
    the IsolationForest baseline, disparate impact of the flags, accuracy parity, drift) and become champion; the
    audit log says promoted and nothing is alerted.
(b) the next day lands with the generator's bias knob on (same seed; one region's legitimate claims look odd):
    the same models score it, that region's claims are flagged far more often, the disparate-impact gate fails
    and the registration refuses: the champion of (a) stays, the refusal is audited and alerted.
(c) the day after lands clean, but the shipped flags of the model that is not the better one are biased against
    one region (as if that model alone had drifted): its own disparate-impact gate fails, the better model's
    passes, and the better model is promoted: one model's biased flags never block the other.
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
from healthcare_assets.assets.promotion import PROMOTION_CHECK
from healthcare_assets.assets.risk import (
    FAIRNESS_CHECK_KEY,
    MEMBER_RISK_MODEL_KEY,
    PROMOTION_CHECK_KEYS,
    REGISTERED_RISK_MODEL_KEY,
)
from healthcare_assets.assets.risk import MODEL_NAME as RISK_MODEL_NAME
from healthcare_assets.definitions import build_definitions
from healthcare_assets.domain import fairness
from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource
from healthcare_assets.resources.spark import get_session
from healthcare_assets.settings import load_settings

START, DAY, BIASED_DAY, ONE_MODEL_BIASED_DAY = date(2026, 1, 1), date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)
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
FAIRNESS = "governance/fairness_monitoring"


def di_gate(model_type: str) -> tuple[str, str]:
    return (FAIRNESS, f"disparate_impact_within_band_{model_type}")


@dataclass
class Scenario:
    pipeline: Pipeline
    result: dg.ExecuteInProcessResult
    alerts: list  # requests the Slack stand-in received
    clean_alerts: int  # of them, those received by the end of `result`
    biased: dg.ExecuteInProcessResult | None = None  # BIASED_DAY scored and judged with the bias knob on
    one_model_biased: dg.ExecuteInProcessResult | None = None  # ONE_MODEL_BIASED_DAY: one model's flags biased
    better_model: str | None = None  # the model registered_fraud_model picks (the better evaluation ROC-AUC)


def _bias_flags_of(pipeline: Pipeline, model_type: str, day: date, region: str = BIASED_REGION) -> None:
    """Rewrites the model's stored flags of `day`: every other claim of `region` flagged, as a drifted model would."""
    storage = DeltaStorage(get_session(TEST_ENGINE), pipeline.settings.lakehouse_root, engine=TEST_ENGINE)
    ref = TableRef.from_path(SCORE_KEYS[model_type].path)
    scores = storage.read(ref, day, day).toPandas()
    features = storage.read(TableRef.from_path(CLAIM_FEATURES_KEY.path), day, day)
    regions = dict(features.select("claim_id", "geographic_region").toPandas().itertuples(index=False))
    in_region = scores["claim_id"].map(regions).eq(region).to_numpy()
    scores.loc[in_region, "is_flagged_p95"] = [index % 2 == 0 for index in range(int(in_region.sum()))]
    storage.replace_days(storage.spark.createDataFrame(scores, storage.read(ref).schema), ref, day, day)


def _scenario(
    root,
    synthetic: dict,
    data_for: list[dg.AssetKey],
    train: list[dg.AssetKey],
    op_config: dict | None = None,
    judge_biased_day: list[dg.AssetKey] | None = None,
) -> Scenario:
    """Materialises everything `data_for` needs for START..DAY (but `train`), then `train` for DAY in one run;
    with `judge_biased_day`, then lands BIASED_DAY with the bias knob on and materialises those assets for it, and
    lands ONE_MODEL_BIASED_DAY clean, scores it, biases the flags of the model not registered and judges it."""
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
    gold = dg.AssetSelection.assets(CLAIM_FEATURES_KEY).upstream().required_multi_asset_neighbors().resolve(graph)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SLACK_WEBHOOK_URL", webhook)  # the secret is read when the run starts
            assert pipeline.run(START, DAY, selection=list(data)).success
            result = pipeline.run(DAY, selection=train, op_config=op_config)
            scenario = Scenario(pipeline, result, server.requests, len(server.requests))
            if judge_biased_day:
                # the knob alone changes: same seed and volumes, the next day's feeds through gold, no retraining
                clean_synthetic = pipeline.synthetic
                pipeline.synthetic = {**clean_synthetic, **BIAS_KNOB}
                assert pipeline.run(BIASED_DAY, selection=list(gold)).success
                scenario.biased = pipeline.run(BIASED_DAY, selection=judge_biased_day)

                pipeline.synthetic = clean_synthetic
                day = ONE_MODEL_BIASED_DAY
                assert pipeline.run(day, selection=list(gold)).success
                assert pipeline.run(day, selection=list(SCORE_KEYS.values())).success
                event = pipeline.instance.get_latest_materialization_event(REGISTERED_FRAUD_MODEL_KEY)
                scenario.better_model = event.asset_materialization.metadata["model_type"].value
                [other] = [t for t in SCORE_KEYS if t != scenario.better_model]
                _bias_flags_of(pipeline, other, day)
                scenario.one_model_biased = pipeline.run(
                    day, selection=[FAIRNESS_MONITORING_KEY, REGISTERED_FRAUD_MODEL_KEY]
                )
    finally:
        server.shutdown()
        server.server_close()
    return scenario


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


def _materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dg.AssetMaterialization:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return event.materialization


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
    for model_type in SCORE_KEYS:
        assert evaluations[di_gate(model_type)].passed
        assert evaluations[di_gate(model_type)].metadata["biased_groups"].value == 0
    assert evaluations[("fraud/fraud_model_evaluation", "beats_isolation_forest")].passed

    row = _audit_row(fraud, fraud.result)
    assert row["promoted"] and row["fairness_validated"] and row["reason"] == "every gate passed"
    assert row["model_name"] == FRAUD_MODEL_NAME and row["deployed_by"] == "dagster:__ASSET_JOB"
    gates = _gates(row)
    assert all(gates.values())
    model_type = _materialization(fraud.result, REGISTERED_FRAUD_MODEL_KEY).metadata["model_type"].value
    assert {
        f"governance/fairness_monitoring:disparate_impact_within_band_{model_type}",
        f"governance/fairness_monitoring:false_positive_rate_parity_{model_type}",
        "fraud/fraud_model_evaluation:beats_isolation_forest",
        "monitoring/drift_summary:composite_drift_within_limit",
        "monitoring/psi_metrics:psi_within_limits",
    } <= set(gates)
    assert sum(g.endswith((":training_data_volume", ":scores_sane")) for g in gates) == 2
    assert not any(g.endswith(("_catboost", "_xgboost")) and model_type not in g for g in gates)  # its own only
    assert fraud.clean_alerts == 0
    assert (
        _materialization(fraud.result, REGISTERED_FRAUD_MODEL_KEY).metadata["champion_version"].value
        == row["model_version"]
    )
    assert evaluations[("fraud/registered_fraud_model", PROMOTION_CHECK)].passed


def test_b_the_bias_knob_fails_the_di_gate_and_the_champion_stays(fraud):
    assert fraud.biased is not None and fraud.biased.success  # the refusal is audited and alerted, the run green
    table = _fairness(fraud, BIASED_DAY)
    judged = table[table["status"].isin([fairness.FAIR, fairness.BIAS, fairness.BELOW_REFERENCE])]
    # bias is being flagged more: only ratios above the band are bias, ratios below it are reported as such
    assert ((judged["disparate_impact"] > fairness.DI_UPPER) == (judged["status"] == fairness.BIAS)).all()
    below = judged[judged["status"] == fairness.BELOW_REFERENCE]
    assert (below["disparate_impact"] < fairness.DI_LOWER).all()
    # the knob is the cause: with the same models, the biased region's claims are flagged significantly more often
    # than every other region's and than its own the day before
    region, clean_region = _region_rows(table), _region_rows(_fairness(fraud, DAY))
    assert set(region["status"]) == {fairness.BIAS} and (region["disparate_impact"] > fairness.DI_UPPER).all()
    assert (region["chi_square_p_value"] < fairness.CHI_SQUARE_ALPHA).all()
    by_model, clean_by_model = region.set_index("model_type"), clean_region.set_index("model_type")
    assert (by_model["flag_rate"] > 1.5 * clean_by_model["flag_rate"]).all()
    regions = table[table["attribute"] == "geographic_region"]
    assert (regions.loc[regions.groupby("model_type")["flag_rate"].idxmax(), "protected_group"] == BIASED_REGION).all()
    # the flags judged are the ones each model shipped: its stored is_flagged_p95 of the day
    for model_type, model in table.groupby("model_type"):
        shipped = DeltaTable(fraud.pipeline.table("gold", f"fraud_scores_{model_type}")).to_pandas()
        shipped = shipped[shipped["ingest_date"] == BIASED_DAY]
        per_attribute = model.groupby("attribute")[["flagged", "group_size"]].sum()
        assert (per_attribute["flagged"] == int(shipped["is_flagged_p95"].sum())).all()
        assert (per_attribute["group_size"] == len(shipped)).all()
    metadata = _materialization(fraud.biased, FAIRNESS_MONITORING_KEY).metadata
    assert "| model | attribute |" in metadata["report"].value and BIASED_REGION in metadata["report"].value
    assert "false-positive rate (FPR)" in metadata["report"].value
    assert embedded_chart(metadata["disparate_impact_chart"]) == (
        "Disparate impact per protected group, the run's days pooled",
        (800, 350),
    )

    evaluations = check_results(fraud.biased)
    for model_type in SCORE_KEYS:
        di = evaluations[di_gate(model_type)]
        assert not di.passed and di.severity == dg.AssetCheckSeverity.ERROR
        model_rows = table[table["model_type"] == model_type]
        assert di.metadata["biased_groups"].value == int((model_rows["status"] == fairness.BIAS).sum())
        worst = di.metadata["worst_biased"].value[0]
        assert worst["flag_rate"].endswith("%") and worst["claims"] > 0 and worst["compared_with"]
    champion_before = _audit_row(fraud, fraud.result)["model_version"]
    row = _audit_row(fraud, fraud.biased)
    registry = _registry(fraud.pipeline)
    assert str(registry.version_with_alias(FRAUD_MODEL_NAME, CHALLENGER).version) != champion_before
    assert row["model_version"] != champion_before and not row["promoted"] and not row["fairness_validated"]
    gates = _gates(row)
    # every other gate passed, as in (a): the bias alone blocks the promotion
    assert [g for g, passed in gates.items() if not passed] == [
        f"governance/fairness_monitoring:disparate_impact_within_band_{fraud.better_model}"
    ]
    assert "disparate_impact_within_band" in row["reason"] and "failed" in row["reason"]
    [(path, _, body)] = fraud.alerts[fraud.clean_alerts :]
    assert path == "/hook" and f"promotion of {FRAUD_MODEL_NAME} blocked" in body["text"]
    registration = _materialization(fraud.biased, REGISTERED_FRAUD_MODEL_KEY)
    assert registration.metadata["promoted"].value is False
    assert registration.metadata["champion_version"].value == champion_before
    # the refusal is visible on the registered model: its promotion check fails as a warning, with the reason
    refusal = check_results(fraud.biased)[("fraud/registered_fraud_model", PROMOTION_CHECK)]
    assert not refusal.passed and refusal.severity == dg.AssetCheckSeverity.WARN
    assert f"champion stays version {champion_before}" in refusal.description
    assert "disparate_impact_within_band" in refusal.description and "failed" in refusal.description


def test_c_one_models_biased_flags_do_not_block_the_other(fraud):
    result, better = fraud.one_model_biased, fraud.better_model
    assert result is not None and result.success
    [other] = [t for t in SCORE_KEYS if t != better]
    evaluations = check_results(result)
    assert not evaluations[di_gate(other)].passed  # its flags were biased against the region
    [worst] = evaluations[di_gate(other)].metadata["worst_biased"].value[:1]
    assert worst["group"] == BIASED_REGION and worst["attribute"] == "geographic_region"
    assert evaluations[di_gate(better)].passed

    row = _audit_row(fraud, result)
    assert row["promoted"] and row["fairness_validated"] and row["reason"] == "every gate passed"
    gates = _gates(row)
    assert f"governance/fairness_monitoring:disparate_impact_within_band_{better}" in gates
    assert not any(g.endswith(f"_{other}") for g in gates)  # the other model's gates are not this model's
    registry = _registry(fraud.pipeline)
    assert str(registry.version_with_alias(FRAUD_MODEL_NAME, CHAMPION).version) == row["model_version"]
    assert _materialization(result, REGISTERED_FRAUD_MODEL_KEY).metadata["model_type"].value == better


def test_fail_on_bias_fails_the_run_only_for_a_model_biased_in_more_than_one_attribute(fraud):
    table = _fairness(fraud, BIASED_DAY)
    biased = table[table["status"] == fairness.BIAS].groupby("model_type")["attribute"].nunique()
    assert (biased >= 1).all() and "geographic_region" in set(table.loc[table["status"] == fairness.BIAS, "attribute"])
    over_limit = sorted(biased[biased > fairness.MAX_BIASED_ATTRIBUTES].index)
    config = {"governance__fairness_monitoring": {"config": {"fail_on_bias": True}}}
    result = fraud.pipeline.run(BIASED_DAY, selection=[FAIRNESS_MONITORING_KEY], op_config=config)
    # bias in one attribute is the DI gate's to report; in more, the run fails and says which model and day
    assert result.success == (not over_limit)
    if over_limit:
        [failure] = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.to_string()
        assert "fail_on_bias" in message and all(f"{m} {BIASED_DAY}" in message for m in over_limit)
    else:
        assert not any(check_results(result)[di_gate(t)].passed for t in SCORE_KEYS)


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
