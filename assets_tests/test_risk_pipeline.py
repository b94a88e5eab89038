"""Risk models in the real code location: training, gates, champion promotion, daily scoring, monitoring, outreach."""

import json
from datetime import date

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from assets_tests.pipeline import Pipeline, check_results, materialized, run_checks
from healthcare_assets.assets.gold import MEMBER_FEATURES_KEY
from healthcare_assets.assets.outreach import OUTREACH_KEY
from healthcare_assets.assets.promotion import MODEL_AUDIT_LOG_KEY, PROMOTION_CHECK
from healthcare_assets.assets.risk import (
    MEMBER_RISK_MODEL_KEY,
    MEMBER_RISK_PREDICTIONS_KEY,
    MODEL_NAME,
    REGISTERED_RISK_MODEL_KEY,
)
from healthcare_assets.domain import risk
from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource

D1, D3 = date(2026, 1, 1), date(2026, 1, 3)
GATES = [("risk/member_risk_model", gate.name) for gate in risk.PROMOTION_GATES]
PREDICTION_COLUMNS = {
    "member_key",
    "ingest_date",
    "risk_score",
    "high_risk_prediction",
    "high_risk_score",
    "predicted_total_cost",
    "model_name",
    "model_version",
    "scored_at",
}


def _read(pipeline: Pipeline, schema: str, table: str) -> pd.DataFrame:
    return DeltaTable(pipeline.table(schema, table)).to_pandas()


def _registry(pipeline: Pipeline) -> MlflowResource:
    return MlflowResource(tracking_uri=pipeline.settings.mlflow_tracking_uri)


def _failure_message(result, step: str) -> str:
    failures = [e for e in result.all_events if e.is_step_failure and e.step_key == step]
    assert failures, f"{step} did not fail"
    return failures[0].step_failure_data.error.to_string()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    # its own parent folder: the MLflow store sits beside the lakehouse, and this test owns its registry
    pipeline = Pipeline(tmp_path_factory.mktemp("risk") / "lakehouse")
    graph = pipeline.defs.resolve_asset_graph()
    upstream = dg.AssetSelection.assets(MEMBER_FEATURES_KEY).upstream().required_multi_asset_neighbors().resolve(graph)
    # scoring before any model was promoted fails with a clear message
    pipeline.unpromoted = pipeline.run(D1, D3, selection=[*upstream, MEMBER_RISK_PREDICTIONS_KEY])
    pipeline.first_result = pipeline.run(D1, D3)
    return pipeline


def test_scoring_without_a_champion_fails_clearly(pipeline):
    message = _failure_message(pipeline.unpromoted, "gold__member_risk_predictions")
    assert f"{MODEL_NAME} has no {CHAMPION}" in message


def test_training_passes_the_gates_promotes_and_scores_every_member_daily(pipeline):
    result = pipeline.first_result
    assert result.success
    checks = check_results(result)
    assert all(checks[gate].passed for gate in GATES)
    assert {"risk/member_risk_model", "risk/registered_risk_model", "gold/member_risk_predictions"} <= materialized(
        result
    )
    assert checks[("risk/registered_risk_model", "champion_is_the_promoted_version")].passed
    promoted = checks[("risk/registered_risk_model", PROMOTION_CHECK)]
    assert promoted.passed and promoted.description.startswith("version ")
    assert checks[("gold/immunization_master_outreach_list", "primary_key_unique")].passed
    assert checks[("gold/member_risk_predictions", "values_valid")].passed
    assert "gold/immunization_master_outreach_list" in materialized(result)

    model = pipeline.instance.get_latest_materialization_event(MEMBER_RISK_MODEL_KEY).asset_materialization.metadata
    gates = model["promotion_gates"].value
    assert gates["risk_score_r2_gate"]["margin"] > 0 and gates["risk_score_mae_gate"]["margin"] > 0
    assert model["member_features_delta_version"].value >= 0
    run = _registry(pipeline).client().get_run(model["mlflow_run_id"].value)
    assert run.data.params["member_features_delta_version"] == str(model["member_features_delta_version"].value)
    assert run.data.metrics["risk_score_r2"] == model["metrics"].value["risk_score_r2"]
    assert not any("member" in name and "key" in name for name in run.data.params)

    registry = _registry(pipeline)
    champion = registry.version_with_alias(MODEL_NAME, CHAMPION)
    challenger = registry.version_with_alias(MODEL_NAME, CHALLENGER)
    assert str(champion.version) == str(challenger.version) == model["model_version"].value

    predictions = _read(pipeline, "gold", "member_risk_predictions")
    members = _read(pipeline, "gold", "member_features")
    assert set(predictions.columns) == PREDICTION_COLUMNS
    assert predictions.groupby("ingest_date").size().to_dict() == {
        day: len(members) for day in pd.date_range(D1, D3).date
    }
    assert not predictions.duplicated(["member_key", "ingest_date"]).any()
    assert predictions["risk_score"].between(0, 100).all()
    assert (predictions["model_version"] == str(champion.version)).all()
    assert checks[("gold/member_risk_predictions", "daily_prediction_volume")].passed
    mae = checks[("gold/member_risk_predictions", "risk_score_mae_drift")]
    assert mae.passed
    # judged on the members the model did not train on: about a quarter of those scored, never all of them
    held_out = predictions["member_key"].map(risk.is_test_member)
    for day, members in mae.metadata["held_out_members_by_day"].value.items():
        scored = predictions[predictions["ingest_date"] == date.fromisoformat(day)]
        assert 0 < members <= int(held_out[scored.index].sum()) < len(scored)
    assert mae.metadata["test_share"].value == {str(champion.version): risk.TEST_SHARE}
    assert model["split"].value == {"rule": risk.SPLIT_RULE, "test_share": risk.TEST_SHARE}
    assert run.data.params["split_test_share"] == str(risk.TEST_SHARE)
    # accuracy is recorded beside the majority-class baseline, and the gates a trivial classifier fails ran
    assert (
        gates["high_risk_accuracy_gate"]["majority_baseline_accuracy"]
        == model["metrics"].value["majority_baseline_accuracy"]
    )
    assert checks[("risk/member_risk_model", "high_risk_balanced_accuracy_gate")].passed
    assert checks[("risk/member_risk_model", "high_risk_roc_auc_gate")].passed


def test_outreach_list_has_one_explained_row_per_member(pipeline):
    listed = _read(pipeline, *OUTREACH_KEY.path)
    assert listed["member_key"].is_unique
    assert set(listed["member_key"]) <= set(_read(pipeline, "gold", "member_features")["member_key"])
    assert sorted(listed["outreach_rank"]) == list(range(1, len(listed) + 1))
    assert listed["tier_reason"].str.len().gt(0).all()
    assert (listed["due_vaccines"].map(len) > 0).all()
    assert set(listed["outreach_tier"]) <= {1, 2, 3}
    tier_1 = listed[listed["outreach_tier"] == 1]
    assert tier_1["high_risk_prediction"].all() and (tier_1["overdue_vaccines"].map(len) > 0).all()
    ranked = listed.sort_values("outreach_rank")
    assert (ranked["outreach_priority_score"].diff().dropna() <= 0).all()


def test_a_degraded_model_fails_its_gate_and_is_not_promoted(pipeline):
    registry = _registry(pipeline)
    champion_before = registry.version_with_alias(MODEL_NAME, CHAMPION).version
    degraded = pipeline.run(
        D3,
        selection=[MEMBER_RISK_MODEL_KEY, REGISTERED_RISK_MODEL_KEY],
        op_config={"risk__member_risk_model": {"config": {"n_estimators": 1}}},
    )
    assert not degraded.success
    checks = check_results(degraded)
    r2 = checks[("risk/member_risk_model", "risk_score_r2_gate")]
    assert not r2.passed and r2.severity == dg.AssetCheckSeverity.ERROR
    assert r2.metadata["margin"].value < 0
    assert "risk/registered_risk_model" not in materialized(degraded)
    assert registry.version_with_alias(MODEL_NAME, CHAMPION).version == champion_before
    assert registry.version_with_alias(MODEL_NAME, CHALLENGER).version != champion_before

    # promoting alone later re-verifies the recorded gate results and refuses
    retry = pipeline.run(D3, selection=[REGISTERED_RISK_MODEL_KEY])
    assert retry.success  # a refusal is recorded, not a pipeline failure
    refusal = next(e for e in retry.get_asset_materialization_events() if e.asset_key == REGISTERED_RISK_MODEL_KEY)
    assert "risk_score_r2_gate failed" in refusal.materialization.metadata["refusal_reason"].value
    # the refusal shows as a failed warning check on the registered model (the graph, the run and the asset page)
    retry_checks = check_results(retry)
    refused_check = retry_checks[("risk/registered_risk_model", PROMOTION_CHECK)]
    assert not refused_check.passed and refused_check.severity == dg.AssetCheckSeverity.WARN
    assert f"champion stays version {champion_before}" in refused_check.description
    assert "risk_score_r2_gate failed" in refused_check.description
    assert retry_checks[("risk/registered_risk_model", "champion_is_the_promoted_version")].passed
    # the decision is a materialisation of the audit log asset, from the promotion's run
    logged = next(e for e in retry.get_asset_materialization_events() if e.asset_key == MODEL_AUDIT_LOG_KEY)
    assert logged.materialization.metadata["promoted"].value is False
    assert registry.version_with_alias(MODEL_NAME, CHAMPION).version == champion_before
    # every decision is in the audit log: the first promotion, then the refusal with the failed gate
    audit = _read(pipeline, "governance", "model_audit_log").sort_values("decided_at")
    assert audit["model_name"].unique().tolist() == [MODEL_NAME]
    assert audit["promoted"].tolist()[0] and not audit["promoted"].tolist()[-1]
    refused = audit.iloc[-1]
    assert refused["run_id"] == retry.run_id and "risk_score_r2_gate failed" in refused["reason"]
    assert refused["model_version"] != champion_before
    gates = {g["gate"]: g["passed"] for g in json.loads(refused["gate_results"])}
    assert gates["risk/member_risk_model:risk_score_r2_gate"] is False
    assert "risk/member_risk_model:high_risk_accuracy_parity" in gates


def test_a_first_refusal_leaves_no_champion_and_the_champion_check_says_so(tmp_path):
    """With no champion at all the champion check does not pass on "none" = "none": it warns with the reason."""
    fresh = Pipeline(tmp_path / "lakehouse")
    graph = fresh.defs.resolve_asset_graph()
    upstream = dg.AssetSelection.assets(MEMBER_FEATURES_KEY).upstream().required_multi_asset_neighbors().resolve(graph)
    degraded = {"risk__member_risk_model": {"config": {"n_estimators": 1}}}
    assert fresh.run(D1, selection=list(upstream)).success
    assert not fresh.run(D1, selection=[MEMBER_RISK_MODEL_KEY], op_config=degraded).success  # its R^2 gate fails
    refused = fresh.run(D1, selection=[REGISTERED_RISK_MODEL_KEY])
    assert refused.success
    checks = check_results(refused)
    champion = checks[("risk/registered_risk_model", "champion_is_the_promoted_version")]
    assert not champion.passed and champion.severity == dg.AssetCheckSeverity.WARN
    assert champion.metadata["champion_version"].value == "none"
    assert (
        f"{MODEL_NAME} has no champion" in champion.description and "risk_score_r2_gate failed" in champion.description
    )
    promoted = checks[("risk/registered_risk_model", PROMOTION_CHECK)]
    assert not promoted.passed and f"{MODEL_NAME} has no champion yet" in promoted.description
    assert _registry(fresh).version_with_alias(MODEL_NAME, CHAMPION) is None


def test_the_audit_log_is_an_asset_that_summarises_every_decision(pipeline):
    result = pipeline.run(D3, selection=[MODEL_AUDIT_LOG_KEY])
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == MODEL_AUDIT_LOG_KEY]
    metadata = event.materialization.metadata
    audit = _read(pipeline, "governance", "model_audit_log")
    assert metadata["dagster/row_count"].value == metadata["decisions"].value == len(audit)
    assert metadata["refusals"].value == int((~audit["promoted"]).sum())
    assert MODEL_NAME in metadata["latest_decisions"].value
    columns = {c.name for c in metadata["dagster/column_schema"].value.columns}
    assert columns == set(audit.columns)


def test_monitoring_mae_ignores_the_members_the_model_trained_on(pipeline, spark):
    storage = DeltaStorage(spark, pipeline.settings.lakehouse_root)
    ref = TableRef.from_path(MEMBER_RISK_PREDICTIONS_KEY.path)
    day = date(2026, 1, 2)
    stored = storage.read(ref, day, day).toPandas()
    before = check_results(run_checks(pipeline, day, job="model_output_checks"))
    before = before[("gold/member_risk_predictions", "risk_score_mae_drift")]
    # every training member's score is now as wrong as a score can be; the held-out members' are untouched
    trained = ~stored["member_key"].map(risk.is_test_member)
    spoiled = stored.copy()
    spoiled.loc[trained, "risk_score"] = (100 - spoiled.loc[trained, "risk_score"]).where(
        spoiled.loc[trained, "risk_score"] < 50, 0.0
    )
    storage.replace_days(spark.createDataFrame(spoiled, schema=storage.read(ref).schema), ref, day, day)

    after = check_results(run_checks(pipeline, day, job="model_output_checks"))
    after = after[("gold/member_risk_predictions", "risk_score_mae_drift")]
    assert after.passed
    assert after.metadata["mae_by_day"].value == before.metadata["mae_by_day"].value
    assert after.metadata["held_out_members_by_day"].value == before.metadata["held_out_members_by_day"].value


def test_monitoring_fails_on_low_volume_and_mae_drift(pipeline, spark):
    storage = DeltaStorage(spark, pipeline.settings.lakehouse_root)
    ref = TableRef.from_path(MEMBER_RISK_PREDICTIONS_KEY.path)
    day = D3
    stored = storage.read(ref, day, day).toPandas()
    # a broken scoring day: a handful of rows, every score far from the actuarial label
    broken = stored.head(risk.MIN_DAILY_PREDICTIONS - 10).copy()
    broken["risk_score"] = (100 - broken["risk_score"]).where(broken["risk_score"] < 50, 0.0)
    frame = spark.createDataFrame(broken, schema=storage.read(ref).schema)
    storage.replace_days(frame, ref, day, day)

    checks = check_results(run_checks(pipeline, day, job="model_output_checks"))
    volume = checks[("gold/member_risk_predictions", "daily_prediction_volume")]
    assert not volume.passed and volume.severity == dg.AssetCheckSeverity.ERROR
    assert volume.metadata["days_below_minimum"].value == {day.isoformat(): risk.MIN_DAILY_PREDICTIONS - 10}
    drift = checks[("gold/member_risk_predictions", "risk_score_mae_drift")]
    assert not drift.passed and drift.metadata["worst_mae"].value > risk.MAX_MONITORED_MAE
    # the earlier days are untouched and still pass
    earlier = check_results(run_checks(pipeline, D1, job="model_output_checks"))
    assert earlier[("gold/member_risk_predictions", "daily_prediction_volume")].passed
