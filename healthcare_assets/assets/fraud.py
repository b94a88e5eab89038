"""Fraud detection: two tree autoencoders (CatBoost, XGBoost) trained side by side, evaluated against the
generator's labels and an IsolationForest baseline, and batch scoring of each day's claims inside Spark."""

import glob
import tempfile
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets import charts
from healthcare_assets.assets.common import latest_metadata_value, run_day_range
from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
from healthcare_assets.assets.landing import FRAUD_LABELS_KEY
from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder, TreeParams, recent_training_days
from healthcare_assets.domain.features import FRAUD_NUMERIC_FEATURES
from healthcare_assets.domain.fraud_evaluation import (
    detection_metrics,
    isolation_forest_scores,
    pr_points,
    recall_by_pattern,
    roc_points,
)
from healthcare_assets.domain.sources import FRAUD_LABELS_FOLDER
from healthcare_assets.metadata import rounded, share_metadata
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import MlflowResource, pinned_requirements
from healthcare_assets.transforms import scoring

FRAUD_GROUP = "fraud"
FRAUD_OWNERS = ["team:fraud-ml"]
MODEL_TYPES = ("catboost", "xgboost")
MODEL_KEYS = {model_type: dg.AssetKey(["fraud", f"fraud_model_{model_type}"]) for model_type in MODEL_TYPES}
EVALUATION_KEY = dg.AssetKey(["fraud", "fraud_model_evaluation"])
SCORE_KEYS = {model_type: dg.AssetKey(["gold", f"fraud_scores_{model_type}"]) for model_type in MODEL_TYPES}
EXPERIMENT = "claims_fraud_autoencoder"
CLAIM_FEATURES = TableRef("gold", "claim_features")
# score chart: SCORE_CHART_BINS bins from 0 to SCORE_CHART_RANGE x the p99 threshold, higher scores in one tail bar
SCORE_CHART_BINS = 40
SCORE_CHART_RANGE = 2.0


class FraudTrainingConfig(dg.Config):
    """Training knobs: the most recent received days holding about `max_training_rows` claims; the latest
    `validation_share` of those days validate, the earlier ones train."""

    max_training_rows: int = 20_000
    validation_share: float = 0.2
    iterations: int = 100
    depth: int = 5
    learning_rate: float = 0.15
    seed: int = 42


def _feature_frame(table: DataFrame, keys: list[str], features: list[str]) -> DataFrame:
    """Key and feature columns, numeric features as double (decimals would not survive JSON or numpy)."""
    numeric = set(FRAUD_NUMERIC_FEATURES)
    return table.select(*keys, *(F.col(f).cast("double").alias(f) if f in numeric else F.col(f) for f in features))


def _training_frames(
    lakehouse: LakehouseResource, config: FraudTrainingConfig, features: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, int, date, date]:
    """Train/validation frames (feature columns and day only) from the latest days, capped in size; the
    table version and the window's first training and first validation days."""
    storage = lakehouse.storage()
    version = storage.version(CLAIM_FEATURES)
    frame = _feature_frame(storage.read(CLAIM_FEATURES, version=version), [PARTITION_COLUMN, "claim_id"], features)
    counts = {row[0]: row[1] for row in frame.groupBy(PARTITION_COLUMN).count().collect()}
    try:
        first_day, first_validation = recent_training_days(counts, config.max_training_rows, config.validation_share)
    except ValueError as error:
        raise dg.Failure(f"gold.claim_features: {error}") from error
    # a stable row order (Spark's is not): the same table version trains the same models
    frame = frame.where(frame[PARTITION_COLUMN] >= first_day).orderBy(PARTITION_COLUMN, "claim_id").toPandas()
    is_validation = frame[PARTITION_COLUMN] >= first_validation
    return (
        frame[~is_validation].reset_index(drop=True),
        frame[is_validation].reset_index(drop=True),
        version,
        first_day,
        first_validation,
    )


def _train_fraud_model(
    context: dg.AssetExecutionContext,
    model_type: str,
    config: FraudTrainingConfig,
    lakehouse: LakehouseResource,
    mlflow_resource: MlflowResource,
) -> dg.MaterializeResult:
    import mlflow
    from mlflow.models import infer_signature

    from healthcare_assets.domain.autoencoder_pyfunc import AutoencoderPyfunc, example_output

    params = TreeParams(iterations=config.iterations, depth=config.depth, learning_rate=config.learning_rate)
    autoencoder = ClaimsTreeAutoencoder(model_type, params=params, seed=config.seed)
    train, validation, delta_version, first_day, first_validation = _training_frames(
        lakehouse, config, autoencoder.features
    )
    context.log.info(f"{model_type}: training on {len(train)} claims, validating on {len(validation)}")
    autoencoder.fit(train[autoencoder.features], validation[autoencoder.features], progress=context.log.info)
    val_scores, _ = autoencoder.compute_fraud_scores(validation[autoencoder.features])

    run_tags = {"dagster_run_id": context.run_id, "model_type": model_type, "asset": context.asset_key.to_user_string()}
    with mlflow_resource.start_run(EXPERIMENT, run_name=f"{model_type}-{context.run_id[:8]}", tags=run_tags) as run:
        mlflow.log_params(
            {
                "model_type": model_type,
                "iterations": params.iterations,
                "depth": params.depth,
                "learning_rate": params.learning_rate,
                "seed": config.seed,
                "max_training_rows": config.max_training_rows,
                "validation_share": config.validation_share,
                "first_training_day": first_day.isoformat(),
                "first_validation_day": first_validation.isoformat(),
                "training_table": "gold.claim_features",
                "training_table_delta_version": delta_version,
                "n_features": len(autoencoder.features),
            }
        )
        mlflow.log_metrics(
            {
                **autoencoder.training_summary,
                "threshold_p95": autoencoder.thresholds["p95"],
                "threshold_p99": autoencoder.thresholds["p99"],
            }
        )
        mlflow.log_dict(
            {
                "numeric_features": autoencoder.num_features,
                "categorical_features": autoencoder.cat_features,
                "context_features": autoencoder.context_features,  # inputs only, not reconstructed
                "thresholds": autoencoder.thresholds,
            },
            "features.json",
        )
        # feature columns only: no claim ids, member keys or dates leave the lakehouse
        example = validation[autoencoder.features].head(5).reset_index(drop=True)
        with tempfile.TemporaryDirectory() as folder:
            saved = autoencoder.save(folder)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AutoencoderPyfunc(),
                artifacts={"autoencoder": str(saved)},
                signature=infer_signature(example, example_output(autoencoder, example)),
                input_example=example,
                pip_requirements=pinned_requirements(
                    "mlflow", "catboost", "xgboost-cpu", "pandas", "numpy", "scikit-learn"
                ),
            )
        run_id = run.info.run_id
    non_finite = int((~np.isfinite(val_scores)).sum())
    context.log.info(f"{model_type}: logged MLflow run {run_id}")
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "model_uri": info.model_uri,
            "model_version": run_id,
            "model_type": model_type,
            "train_rows": dg.MetadataValue.int(len(train)),
            "validation_rows": dg.MetadataValue.int(len(validation)),
            "first_training_day": first_day.isoformat(),
            "first_validation_day": first_validation.isoformat(),
            "training_table_delta_version": dg.MetadataValue.int(delta_version),
            "threshold_p95": dg.MetadataValue.float(autoencoder.thresholds["p95"]),
            "threshold_p99": dg.MetadataValue.float(autoencoder.thresholds["p99"]),
            "validation_non_finite_scores": dg.MetadataValue.int(non_finite),
            "validation_flag_rate_p95": dg.MetadataValue.float(
                rounded(autoencoder.training_summary["validation_flag_rate_p95"])
            ),
            "features": dg.MetadataValue.json(autoencoder.features),
        }
    )


def _fraud_model_asset(model_type: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=MODEL_KEYS[model_type],
        deps=[CLAIM_FEATURES_KEY],
        description=f"ClaimsTreeAutoencoder with one {model_type} model per claim feature, trained on the latest "
        "days of gold.claim_features; logged to MLflow as a pyfunc model with thresholds and the table version.",
        group_name=FRAUD_GROUP,
        kinds={model_type, "mlflow", "python"},
        owners=FRAUD_OWNERS,
    )
    def fraud_model(
        context: dg.AssetExecutionContext,
        config: FraudTrainingConfig,
        lakehouse: LakehouseResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        return _train_fraud_model(context, model_type, config, lakehouse, mlflow)

    return fraud_model


fraud_model_catboost = _fraud_model_asset("catboost")
fraud_model_xgboost = _fraud_model_asset("xgboost")


def load_fraud_model(model_uri: str) -> ClaimsTreeAutoencoder:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().autoencoder


def _fraud_labels(landing_root: str, start: date, end: date) -> dict[str, str]:
    """claim_id -> injected fraud pattern, from the generator's label files of the days start..end."""
    labels: dict[str, str] = {}
    day = start
    while day <= end:
        for path in glob.glob(str(Path(landing_root) / FRAUD_LABELS_FOLDER / day.isoformat() / "*.csv")):
            frame = pd.read_csv(path, dtype=str)
            labels.update(zip(frame["claim_id"], frame["fraud_pattern"], strict=True))
        day += timedelta(days=1)
    return labels


@dg.asset(
    key=EVALUATION_KEY,
    deps=[*MODEL_KEYS.values(), CLAIM_FEATURES_KEY, FRAUD_LABELS_KEY],
    description="Both autoencoders and an IsolationForest baseline scored on the validation days against the "
    "injected fraud labels: ROC-AUC, PR-AUC, precision at the top 1 % and 5 %, recall per fraud pattern.",
    group_name=FRAUD_GROUP,
    kinds={"mlflow", "scikitlearn", "python"},
    owners=FRAUD_OWNERS,
)
def fraud_model_evaluation(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    models = {t: load_fraud_model(latest_metadata_value(context, MODEL_KEYS[t], "model_uri")) for t in MODEL_TYPES}
    run_ids = {t: latest_metadata_value(context, MODEL_KEYS[t], "mlflow_run_id") for t in MODEL_TYPES}
    first_day, first_validation = (
        date.fromisoformat(latest_metadata_value(context, MODEL_KEYS["catboost"], name))
        for name in ("first_training_day", "first_validation_day")
    )
    features = models["catboost"].features
    storage = lakehouse.storage()
    # the models' training window and every day received since: the baseline trains where they trained
    frame: pd.DataFrame = (
        _feature_frame(storage.read(CLAIM_FEATURES), ["claim_id", PARTITION_COLUMN], features)
        .where(F.col(PARTITION_COLUMN) >= F.lit(first_day))
        .orderBy(PARTITION_COLUMN, "claim_id")  # a stable row order: the baseline's subsampling depends on it
        .toPandas()
    )
    train = frame[frame[PARTITION_COLUMN] < first_validation]
    evaluate = frame[frame[PARTITION_COLUMN] >= first_validation].reset_index(drop=True)
    labels = _fraud_labels(lakehouse.landing_root, min(frame[PARTITION_COLUMN]), max(frame[PARTITION_COLUMN]))
    patterns = evaluate["claim_id"].map(labels)
    is_fraud = patterns.notna().to_numpy()
    if is_fraud.all() or not is_fraud.any():
        raise dg.Failure("the validation days need both labelled fraud and legitimate claims to evaluate the models")

    results: dict[str, dict] = {}
    scores_by_detector: dict[str, np.ndarray] = {}
    client = mlflow.client()
    detectors = len(models) + 1
    for number, (model_type, model) in enumerate(models.items(), start=1):
        context.log.info(f"scoring {len(evaluate)} validation claims with {model_type} ({number} of {detectors})")
        scores, _ = model.compute_fraud_scores(evaluate[features])
        scores_by_detector[model_type] = scores
        metrics = detection_metrics(is_fraud, scores)
        recall = recall_by_pattern(patterns, scores > model.thresholds["p95"])
        results[model_type] = {**metrics, "recall_at_p95_by_pattern": recall}
        for name, value in {**metrics, **{f"recall_p95_{p}": r for p, r in recall.items()}}.items():
            client.log_metric(run_ids[model_type], f"eval_{name}", value)
    context.log.info(f"fitting the IsolationForest baseline on {len(train)} claims ({detectors} of {detectors})")
    baseline_scores = isolation_forest_scores(train, evaluate)
    scores_by_detector["isolation_forest"] = baseline_scores
    baseline = detection_metrics(is_fraud, baseline_scores)
    baseline_flags = baseline_scores > np.percentile(isolation_forest_scores(train, train), 95)
    results["isolation_forest"] = {**baseline, "recall_at_p95_by_pattern": recall_by_pattern(patterns, baseline_flags)}
    for name, result in results.items():
        context.log.info(f"{name}: ROC-AUC {result['roc_auc']:.3f}, PR-AUC {result['pr_auc']:.3f}")

    table = dg.MetadataValue.md(
        "| model | ROC-AUC | PR-AUC | precision@1% | precision@5% |\n|---|---|---|---|---|\n"
        + "\n".join(
            f"| {name} | {r['roc_auc']:.3f} | {r['pr_auc']:.3f} | {r['precision_at_1pct']:.3f} | "
            f"{r['precision_at_5pct']:.3f} |"
            for name, r in results.items()
        )
    )
    return dg.MaterializeResult(
        metadata={
            "evaluation_rows": dg.MetadataValue.int(len(evaluate)),
            "evaluation_fraud_rows": dg.MetadataValue.int(int(is_fraud.sum())),
            "first_evaluation_day": first_validation.isoformat(),
            "results": dg.MetadataValue.json(results),
            "summary": table,
            **_evaluation_curves(is_fraud, scores_by_detector, results),
            **{f"{name}_roc_auc": dg.MetadataValue.float(r["roc_auc"]) for name, r in results.items()},
        }
    )


def _evaluation_curves(
    is_fraud: np.ndarray, scores: dict[str, np.ndarray], results: dict[str, dict]
) -> dict[str, dg.MarkdownMetadataValue]:
    """ROC and precision-recall curves of every detector, one chart each (curve points are rates only)."""
    roc = {f"{name} (AUC {results[name]['roc_auc']:.3f})": roc_points(is_fraud, s) for name, s in scores.items()}
    pr = {f"{name} (AP {results[name]['pr_auc']:.3f})": pr_points(is_fraud, s) for name, s in scores.items()}
    return {
        "roc_curve": charts.figure_markdown(
            charts.curve_figure(
                roc, "ROC curve on the validation days", "false positive rate", "true positive rate", diagonal=True
            )
        ),
        "pr_curve": charts.figure_markdown(
            charts.curve_figure(
                pr,
                "Precision-recall curve on the validation days",
                "recall",
                "precision",
                limits={"fraud share (random flags)": float(np.mean(is_fraud))},
            )
        ),
    }


def score_chart_histogram(scored: DataFrame, thresholds: dict[str, float]) -> scoring.ScoreHistogram:
    """The score chart's bins: from 0 to SCORE_CHART_RANGE x the p99 threshold, higher scores in one tail bar."""
    return scoring.score_histogram(scored, max(SCORE_CHART_RANGE * thresholds["p99"], 1e-6), SCORE_CHART_BINS)


def _score_distribution(context: dg.AssetExecutionContext, scored: DataFrame, thresholds: dict[str, float]) -> dict:
    """Histogram of the run's scores against the model's p95/p99 thresholds (bin counts only leave Spark)."""
    histogram = score_chart_histogram(scored, thresholds)
    context.log.info(
        f"scored {histogram.total} claims: {histogram.flagged_p95} above the p95 threshold, "
        f"{histogram.flagged_p99} above p99"
    )
    return {
        "score_distribution": charts.figure_markdown(
            charts.histogram_figure(
                histogram.edges,
                histogram.counts,
                "Fraud scores of the run's claims against the model's thresholds",
                "fraud score",
                limits={f"{name} threshold": value for name, value in thresholds.items()},
                overflow=histogram.overflow,
                ylabel="claims",
            )
        ),
        "threshold_p95": dg.MetadataValue.float(rounded(thresholds["p95"])),
        "threshold_p99": dg.MetadataValue.float(rounded(thresholds["p99"])),
        "flagged_p95": dg.MetadataValue.int(histogram.flagged_p95),
        "flagged_p99": dg.MetadataValue.int(histogram.flagged_p99),
        # the rates with their denominator: the claims the run scored
        "flagged_p95_share": share_metadata(histogram.flagged_p95, histogram.total),
        "flagged_p99_share": share_metadata(histogram.flagged_p99, histogram.total),
        "scored_claims": dg.MetadataValue.int(histogram.total),
        "non_finite_scores": dg.MetadataValue.int(histogram.non_finite),
    }


def _fraud_scores_asset(model_type: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=SCORE_KEYS[model_type],
        ins={"claim_features": dg.AssetIn(CLAIM_FEATURES_KEY)},
        deps=[MODEL_KEYS[model_type], EVALUATION_KEY],
        description=f"The day's claims scored by the latest {model_type} autoencoder inside Spark: fraud score, "
        "percentile among training scores, p95/p99 flags, top contributing features, model version.",
        group_name="gold",
        kinds={"spark", "delta", model_type},
        owners=FRAUD_OWNERS,
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
    )
    def fraud_scores(
        context: dg.AssetExecutionContext,
        claim_features: DataFrame,
        mlflow: MlflowResource,  # noqa: ARG001  # points this step's process at the tracking store
    ) -> DataFrame:
        model_uri = latest_metadata_value(context, MODEL_KEYS[model_type], "model_uri")
        model_version = latest_metadata_value(context, MODEL_KEYS[model_type], "model_version")
        start, end = run_day_range(context)
        context.log.info(f"scoring {start}..{end} with {model_type} model {model_version}")
        model = load_fraud_model(model_uri)
        # scored once: the distribution below and the IO manager's write both read the checkpoint
        scored = scoring.fraud_scores(claim_features, model, model_version).localCheckpoint()
        context.add_output_metadata(_score_distribution(context, scored, model.thresholds))
        return scored

    return fraud_scores


fraud_scores_catboost = _fraud_scores_asset("catboost")
fraud_scores_xgboost = _fraud_scores_asset("xgboost")
