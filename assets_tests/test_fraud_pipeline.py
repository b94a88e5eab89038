"""Fraud models in the real code location: both autoencoders train in one multiprocess run, log to a real
MLflow store, score a day inside Spark idempotently, and are evaluated against the generator's labels."""

from datetime import date

import dagster as dg
import mlflow
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from assets_tests.embedded_charts import embedded_chart
from assets_tests.fraud_job import fraud_model_training
from assets_tests.pipeline import RANGE_END_TAG, RANGE_START_TAG, Pipeline, check_results, materialized
from healthcare_assets.assets.fraud import EVALUATION_KEY, MODEL_KEYS, SCORE_KEYS
from healthcare_assets.domain.features import FRAUD_CATEGORICAL_FEATURES, FRAUD_NUMERIC_FEATURES
from healthcare_assets.resources.mlflow import MlflowResource

D1, D5 = date(2026, 1, 1), date(2026, 1, 5)
FEATURES = [*FRAUD_NUMERIC_FEATURES, *FRAUD_CATEGORICAL_FEATURES]
SCORE_COLUMNS = {
    "claim_id": "string",
    "member_key": "string",
    "claim_date": "date32[day]",
    "fraud_score": "double",
    "score_percentile": "double",
    "is_flagged_p95": "bool",
    "is_flagged_p99": "bool",
    "top_features": "string",
    "model_version": "string",
    "ingest_date": "date32[day]",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Five small days through gold, then the training job (models + D5 scores) on the multiprocess executor."""
    root = tmp_path_factory.mktemp("fraud")
    pipeline = Pipeline(root / "lakehouse", synthetic={"fraud_rate": 0.1})
    assert pipeline.run(D1, D5).success
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAKEHOUSE_ROOT", pipeline.settings.lakehouse_root)  # the step processes load settings again
        (root / "dagster_home").mkdir()
        instance = dg.DagsterInstance.local_temp(str(root / "dagster_home"))
        selection = [*MODEL_KEYS.values(), *SCORE_KEYS.values()]
        with dg.execute_job(
            dg.reconstructable(fraud_model_training),
            instance=instance,
            tags={"dagster/partition": D5.isoformat()},
            asset_selection=selection,
        ) as result:
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            done = materialized(result)
            checks = check_results(result)
            events = {key: instance.get_latest_materialization_event(key) for key in selection}
            step_starts = {
                entry.dagster_event.step_key: entry.timestamp
                for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)
            }
    return pipeline, instance, done, checks, events, step_starts


def _metadata(event) -> dict:
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def test_both_models_and_scores_materialise_in_one_multiprocess_run(trained):
    _, _, done, checks, _, step_starts = trained
    assert {"fraud/fraud_model_catboost", "fraud/fraud_model_xgboost"} <= done
    assert {"gold/fraud_scores_catboost", "gold/fraud_scores_xgboost"} <= done
    assert {k for k in step_starts if "fraud_model" in k and "check" not in k} >= {
        "fraud__fraud_model_catboost",
        "fraud__fraud_model_xgboost",
    }
    for model_type in ("catboost", "xgboost"):
        assert checks[(f"fraud/fraud_model_{model_type}", "training_data_volume")].passed
        assert checks[(f"fraud/fraud_model_{model_type}", "scores_sane")].passed


def test_mlflow_run_holds_params_metrics_features_model_and_table_version(trained):
    pipeline, _, _, _, events, _ = trained
    resource = MlflowResource(tracking_uri=pipeline.settings.mlflow_tracking_uri)
    claim_features_version = DeltaTable(pipeline.table("gold", "claim_features")).version()
    for model_type, key in MODEL_KEYS.items():
        metadata = _metadata(events[key])
        run = resource.client().get_run(metadata["mlflow_run_id"])
        assert run.data.params["model_type"] == model_type
        assert int(run.data.params["training_table_delta_version"]) == claim_features_version
        assert run.data.metrics["threshold_p95"] < run.data.metrics["threshold_p99"]
        assert run.data.metrics["train_rows"] == metadata["train_rows"]
        artifacts = {a.path for a in resource.client().list_artifacts(run.info.run_id)}
        assert "features.json" in artifacts
        features = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/features.json")
        assert features["numeric_features"] + features["categorical_features"] == FEATURES
        mlflow.set_tracking_uri(pipeline.settings.mlflow_tracking_uri)
        info = mlflow.models.get_model_info(metadata["model_uri"])
        assert [c["name"] for c in info.signature.inputs.to_dict()] == FEATURES  # no ids, no member keys
        assert "fraud_score" in [c["name"] for c in info.signature.outputs.to_dict()]
        local_model = mlflow.artifacts.download_artifacts(metadata["model_uri"])
        example = mlflow.models.Model.load(local_model).load_input_example(local_model)
        assert list(example.columns) == FEATURES
        predicted = mlflow.pyfunc.load_model(metadata["model_uri"]).predict(example)
        assert predicted["fraud_score"].notna().all()


def test_scoring_table_schema_flags_and_reasons(trained):
    pipeline, _, _, _, events, _ = trained
    features = DeltaTable(pipeline.table("gold", "claim_features")).to_pandas()
    day_claims = set(features.loc[features["ingest_date"].astype(str) == D5.isoformat(), "claim_id"])
    for model_type in SCORE_KEYS:
        table = DeltaTable(pipeline.table("gold", f"fraud_scores_{model_type}"))
        schema = {f.name: str(f.type) for f in pa.schema(table.schema().to_arrow())}
        assert {name: schema[name] for name in SCORE_COLUMNS} == SCORE_COLUMNS
        scores = table.to_pandas()
        assert set(scores["claim_id"]) == day_claims and scores["claim_id"].is_unique
        model_metadata = _metadata(events[MODEL_KEYS[model_type]])
        assert set(scores["model_version"]) == {model_metadata["model_version"]}
        assert (scores["is_flagged_p95"] == (scores["fraud_score"] > model_metadata["threshold_p95"])).all()
        flagged = scores[scores["is_flagged_p95"]]
        assert flagged["top_features"].str.split(",").map(lambda names: set(names) <= set(FEATURES)).all()
        # the distribution chart of the scored day, against the model's thresholds
        metadata = events[SCORE_KEYS[model_type]].asset_materialization.metadata
        title, size = embedded_chart(metadata["score_distribution"])
        assert title == "Fraud scores of the run's claims against the model's thresholds" and size == (800, 350)
        assert metadata["threshold_p95"].value == model_metadata["threshold_p95"]
        assert metadata["threshold_p99"].value == model_metadata["threshold_p99"]
        assert metadata["flagged_p95"].value == int(scores["is_flagged_p95"].sum())
        assert metadata["flagged_p99"].value == int(scores["is_flagged_p99"].sum())
        assert metadata["non_finite_scores"].value == 0


def test_rescoring_a_day_writes_once_with_identical_scores(trained):
    pipeline, instance, *_ = trained
    before = {k: DeltaTable(pipeline.table(*k.path)).to_pandas() for k in SCORE_KEYS.values()}
    job = pipeline.defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: D5.isoformat(), RANGE_END_TAG: D5.isoformat()},
        asset_selection=list(SCORE_KEYS.values()),
    )
    assert result.success
    for key, old in before.items():
        new = DeltaTable(pipeline.table(*key.path)).to_pandas()
        assert len(new) == len(old)
        pd.testing.assert_frame_equal(
            new.sort_values("claim_id").reset_index(drop=True), old.sort_values("claim_id").reset_index(drop=True)
        )


def test_evaluation_reports_every_model_and_the_baseline(trained):
    pipeline, instance, *_ = trained
    job = pipeline.defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[EVALUATION_KEY], raise_on_error=False)
    event = instance.get_latest_materialization_event(EVALUATION_KEY)
    metadata = _metadata(event)
    for name in ("catboost", "xgboost", "isolation_forest"):
        metrics = metadata["results"][name]
        assert 0.0 <= metrics["roc_auc"] <= 1.0 and 0.0 <= metrics["pr_auc"] <= 1.0
        assert {"precision_at_1pct", "precision_at_5pct", "recall_at_p95_by_pattern"} <= set(metrics)
    gate = check_results(result)[("fraud/fraud_model_evaluation", "beats_isolation_forest")]
    assert "evaluation_fraud_rows" in gate.metadata or "isolation_forest_roc_auc" in gate.metadata
    assert metadata["evaluation_fraud_rows"] > 0
    embedded = event.asset_materialization.metadata
    assert embedded_chart(embedded["roc_curve"]) == ("ROC curve on the validation days", (800, 350))
    assert embedded_chart(embedded["pr_curve"]) == ("Precision-recall curve on the validation days", (800, 350))
