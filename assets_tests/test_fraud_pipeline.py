"""Fraud models in the real code location: both autoencoders train in one multiprocess run, log to a real
MLflow store, score a day inside Spark idempotently, and are evaluated against the generator's labels."""

import shutil
import tempfile
from datetime import date

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from assets_tests.embedded_charts import embedded_chart
from assets_tests.fraud_job import fraud_model_training
from assets_tests.pipeline import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    TEST_ENGINE,
    Pipeline,
    check_results,
    materialized,
)
from healthcare_assets.assets.fraud import (
    CLAIM_FEATURES,
    EVALUATION_KEY,
    EXPERIMENT,
    MODEL_KEYS,
    SCORE_KEYS,
    feature_frame,
    load_fraud_model,
)
from healthcare_assets.checks.fraud import promotion_gates
from healthcare_assets.definitions import build_definitions
from healthcare_assets.domain.autoencoder_pyfunc import AutoencoderPyfunc
from healthcare_assets.domain.features import FRAUD_CATEGORICAL_FEATURES, FRAUD_NUMERIC_FEATURES
from healthcare_assets.domain.fraud_training import TrainingWindow
from healthcare_assets.metadata import rounded
from healthcare_assets.resources.delta import PARTITION_COLUMN, DeltaStorage
from healthcare_assets.resources.mlflow import MlflowResource
from healthcare_assets.settings import load_settings
from healthcare_assets.transforms.fraud_training import CALIBRATION_COLUMN, training_sample

D1, D4, D5 = date(2026, 1, 1), date(2026, 1, 4), date(2026, 1, 5)
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
    "in_training_window": "bool",
}
# the newest day is held out of training and scored forward; small trees keep the run short
TRAINING = {"holdout_days": 1, "iterations": 40, "depth": 4}
TRAINING_CONFIG = {MODEL_KEYS[t].to_python_identifier(): {"config": TRAINING} for t in MODEL_KEYS}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Five small days through gold, then the training job (models + D5 scores) on the multiprocess executor."""
    root = tmp_path_factory.mktemp("fraud")
    pipeline = Pipeline(root / "lakehouse", synthetic={"fraud_rate": 0.1, "claims_per_day": 150})
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
            run_config={"ops": TRAINING_CONFIG},
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
        for gate in ("training_data_volume", "scores_sane", "forward_flag_rate_in_band"):
            assert checks[(f"fraud/fraud_model_{model_type}", gate)].passed, gate
        scored_gate = checks[(f"gold/fraud_scores_{model_type}", "flag_rate_in_band")]
        assert scored_gate.passed and scored_gate.metadata["days_judged"].value == 1  # D5, held out of training


def test_the_models_learn_from_the_days_before_the_held_out_one(trained):
    pipeline, _, _, _, events, _ = trained
    features = DeltaTable(pipeline.table("gold", "claim_features")).to_pandas()
    day = features["ingest_date"].astype(str)
    for key in MODEL_KEYS.values():
        metadata = _metadata(events[key])
        assert (metadata["first_training_day"], metadata["last_training_day"]) == ("2026-01-01", "2026-01-04")
        assert metadata["first_forward_day"] == D5.isoformat()
        assert metadata["forward_rows"] == int((day == D5.isoformat()).sum())
        # every claim of the training days is sampled (fewer than max_training_rows), one member's on one side
        assert metadata["train_rows"] + metadata["calibration_rows"] == int((day < D5.isoformat()).sum())
        assert 0.15 < metadata["calibration_rows"] / (metadata["train_rows"] + metadata["calibration_rows"]) < 0.35
        assert 0.04 <= metadata["calibration_flag_rate_p95"] <= 0.06  # the thresholds are its p95
        [forward] = metadata["forward_flag_rates"]
        assert forward["day"] == D5.isoformat() and forward["within_band"]


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
        assert run.data.metrics["calibration_rows"] == metadata["calibration_rows"]
        assert run.data.params["last_training_day"] == metadata["last_training_day"] == "2026-01-04"
        assert run.data.params["holdout_days"] == "1" and run.data.params["max_training_rows"] == "20000"
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
        assert not scores["in_training_window"].any()  # D5 is scored forward
        assert (scores["is_flagged_p95"] == (scores["fraud_score"] > model_metadata["threshold_p95"])).all()
        flagged = scores[scores["is_flagged_p95"]]
        assert flagged["top_features"].str.split(",").map(lambda names: set(names) <= set(FEATURES)).all()
        # the distribution chart of the scored day, against the model's thresholds
        metadata = events[SCORE_KEYS[model_type]].asset_materialization.metadata
        title, size = embedded_chart(metadata["score_distribution"])
        assert title == "Fraud scores of the run's claims against the model's thresholds" and size == (800, 350)
        # the scored table shows the thresholds rounded for people; the model keeps them exact
        assert metadata["threshold_p95"].value == rounded(model_metadata["threshold_p95"])
        assert metadata["threshold_p99"].value == rounded(model_metadata["threshold_p99"])
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
    assert metadata["forward_days"] == [D5.isoformat()] and metadata["last_training_day"] == "2026-01-04"
    for name in ("catboost", "xgboost", "isolation_forest", "siu_rules"):
        metrics = metadata["results"][name]
        assert 0.0 <= metrics["roc_auc"] <= 1.0 and 0.0 <= metrics["pr_auc"] <= 1.0
        assert {"precision_at_1pct", "precision_at_5pct", "recall_at_p95_by_pattern"} <= set(metrics)
        assert set(metrics["flag_rate_by_day"]) == {D5.isoformat()}
    gate = check_results(result)[("fraud/fraud_model_evaluation", "beats_isolation_forest")]
    assert "evaluation_fraud_rows" in gate.metadata or "isolation_forest_roc_auc" in gate.metadata
    assert metadata["evaluation_fraud_rows"] > 0
    embedded = event.asset_materialization.metadata
    assert embedded_chart(embedded["roc_curve"]) == ("ROC curve on the forward days", (800, 350))
    assert embedded_chart(embedded["pr_curve"]) == ("Precision-recall curve on the forward days", (800, 350))


def test_thresholds_from_the_training_scores_fail_the_scored_table_gate(trained, spark, tmp_path):
    """The calibration this replaced, restored on purpose: p95/p99 of the scores of the claims the per-feature
    models trained on. Those fit better than a new day's, so the held-out day is flagged far above 5 %: the scored
    table's gate fails naming the day, and the model version cannot be promoted."""
    pipeline, *_, events, _ = trained
    model = load_fraud_model(_metadata(events[MODEL_KEYS["xgboost"]])["model_uri"])
    storage = DeltaStorage(spark, pipeline.settings.lakehouse_root, engine=TEST_ENGINE)
    frame = feature_frame(storage.read(CLAIM_FEATURES), ["claim_id", "member_key", PARTITION_COLUMN], model.features)
    sample = training_sample(frame, TrainingWindow(D1, D4, D5, 4), 20_000, 42, 0.25).toPandas()
    train_scores, _ = model.compute_fraud_scores(sample.loc[~sample[CALIBRATION_COLUMN], model.features])
    model.thresholds = {"p95": float(np.percentile(train_scores, 95)), "p99": float(np.percentile(train_scores, 99))}

    # a copy of the lakehouse and its own instance: the other tests keep the calibrated model and its scores
    shutil.copytree(pipeline.settings.lakehouse_root, tmp_path / "lakehouse")
    copy = Pipeline(tmp_path / "lakehouse")
    tracking = pipeline.settings.mlflow_tracking_uri
    environ = {"LAKEHOUSE_ROOT": str(tmp_path / "lakehouse"), "SPARK_ENGINE": TEST_ENGINE}
    copy.settings = load_settings({**environ, "MLFLOW_TRACKING_URI": tracking})
    copy.defs = build_definitions(copy.settings)
    with MlflowResource(tracking_uri=tracking).start_run(EXPERIMENT, "miscalibrated") as run:
        with tempfile.TemporaryDirectory() as folder:
            artifacts = {"autoencoder": str(model.save(folder))}
            info = mlflow.pyfunc.log_model(name="model", python_model=AutoencoderPyfunc(), artifacts=artifacts)
    version = run.info.run_id
    copy.instance.report_runless_asset_event(
        dg.AssetMaterialization(MODEL_KEYS["xgboost"], metadata={"model_uri": info.model_uri, "model_version": version})
    )
    result = copy.run(D5, selection=[SCORE_KEYS["xgboost"]])
    gate = check_results(result)[("gold/fraud_scores_xgboost", "flag_rate_in_band")]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert D5.isoformat() in (gate.description or "")
    [day] = gate.metadata["flag_rates"].value
    assert day["day"] == D5.isoformat() and day["rate"] > 0.10 and not day["within_band"]
    assert gate.metadata["model_versions"].value == [version]
    alerts = [
        e.user_message for e in copy.instance.all_logs(result.run_id) if "[ERROR] gold/fraud_scores" in e.user_message
    ]
    assert len(alerts) == 1 and f"p95 flag rate outside 2%-10% on {D5}" in alerts[0]  # the log channel's alert
    failed = {g.gate: g.detail for g in promotion_gates(copy.instance, "xgboost", version) if not g.passed}
    assert failed.get("gold/fraud_scores_xgboost:flag_rate_in_band") == "failed"
