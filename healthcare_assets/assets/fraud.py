"""Fraud detection: two tree autoencoders (CatBoost, XGBoost) trained side by side on a sample of the days before
the newest ones, calibrated on claims they did not fit, evaluated forward on the held-out days against the
generator's labels beside an IsolationForest and a baseline of SIU rules, and batch scoring of each day's claims
inside Spark."""

import glob
import tempfile
from dataclasses import dataclass
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
from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder, TreeParams
from healthcare_assets.domain.features import FRAUD_NUMERIC_FEATURES
from healthcare_assets.domain.fraud_evaluation import (
    FLAG_RATE_BAND,
    DayFlagRate,
    IsolationForestBaseline,
    daily_flag_counts,
    day_flag_rates,
    detection_metrics,
    pr_points,
    recall_by_pattern,
    roc_points,
)
from healthcare_assets.domain.fraud_rules import rule_scores
from healthcare_assets.domain.fraud_training import TrainingWindow, training_window
from healthcare_assets.domain.sources import FRAUD_LABELS_FOLDER
from healthcare_assets.metadata import rounded, share_metadata
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import MlflowResource, pinned_requirements
from healthcare_assets.transforms import fraud_training, scoring

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
    """Training knobs. The newest `holdout_days` received days are held out: the models never see them and are
    judged forward on them. Training claims are a seeded sample of at most `max_training_rows` across the
    `training_span_days` days before the holdout; the claims of a `calibration_share` of the members fit no model
    and set the error scales and the p95/p99 thresholds."""

    holdout_days: int = 3
    training_span_days: int = 60
    max_training_rows: int = 20_000
    calibration_share: float = 0.25
    iterations: int = 100
    depth: int = 5
    learning_rate: float = 0.15
    seed: int = 42


def feature_frame(table: DataFrame, keys: list[str], features: list[str]) -> DataFrame:
    """Key and feature columns, numeric features as double (decimals would not survive JSON or numpy)."""
    numeric = set(FRAUD_NUMERIC_FEATURES)
    return table.select(*keys, *(F.col(f).cast("double").alias(f) if f in numeric else F.col(f) for f in features))


@dataclass(frozen=True)
class TrainingSample:
    """What a model learns from: the sampled claims its per-feature models fit, the calibration claims (other
    members, same days) that set its scales and thresholds, and the held-out days it is judged on."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    forward: pd.DataFrame
    window: TrainingWindow
    delta_version: int


def training_sample(
    lakehouse: LakehouseResource, features: list[str], config: FraudTrainingConfig, version: int | None = None
) -> TrainingSample:
    """The sample of gold.claim_features at `version` (default: the latest) that `config` draws; the same config
    and version always give the same rows in the same order, so the same models."""
    storage = lakehouse.storage()
    version = storage.version(CLAIM_FEATURES) if version is None else version
    keys = [PARTITION_COLUMN, "claim_id", "member_key"]
    frame = feature_frame(storage.read(CLAIM_FEATURES, version=version), keys, features)
    days = [row[0] for row in frame.select(PARTITION_COLUMN).distinct().collect()]
    try:
        window = training_window(days, config.holdout_days, config.training_span_days)
        train, calibration = fraud_training.sampled_frames(
            frame, window, config.max_training_rows, config.seed, config.calibration_share
        )
    except ValueError as error:
        raise dg.Failure(f"gold.claim_features: {error}") from error
    forward = frame.where(F.col(PARTITION_COLUMN) >= F.lit(window.first_forward_day))
    return TrainingSample(
        train=train,
        calibration=calibration,
        forward=forward.orderBy(PARTITION_COLUMN, "claim_id").toPandas(),
        window=window,
        delta_version=version,
    )


def _flag_rate_table(rates: list[DayFlagRate]) -> str:
    """Markdown: per day, claims, flagged at p95, the rate and its 95 % interval against the band."""
    low, high = FLAG_RATE_BAND
    lines = [
        f"| day | claims | flagged (p95) | rate | 95 % interval | within {low:.0%}-{high:.0%} |",
        "|---|---|---|---|---|---|",
    ]
    for rate in rates:
        interval = rate.interval
        lines.append(
            f"| {rate.day} | {rate.claims} | {rate.flagged} | {rate.rate:.2%} | "
            f"{interval[0]:.2%}-{interval[1]:.2%} | {'yes' if rate.within_band else '**no**'} |"
        )
    return "\n".join(lines)


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
    features = autoencoder.features
    sample = training_sample(lakehouse, features, config)
    window = sample.window
    context.log.info(
        f"{model_type}: training on {len(sample.train)} claims and calibrating on {len(sample.calibration)} sampled "
        f"from {window.first_day}..{window.last_day}; {len(sample.forward)} claims from {window.first_forward_day} "
        "held out"
    )
    autoencoder.fit(
        sample.train[features],
        sample.calibration[features],
        progress=context.log.info,
        training_days=(window.first_day, window.last_day),
    )
    calibration_scores, _ = autoencoder.compute_fraud_scores(sample.calibration[features])
    forward_scores, _ = autoencoder.compute_fraud_scores(sample.forward[features])
    forward_rates = day_flag_rates(
        daily_flag_counts(sample.forward[PARTITION_COLUMN], forward_scores > autoencoder.thresholds["p95"])
    )
    forward_flag_rate = float(np.mean(forward_scores > autoencoder.thresholds["p95"]))
    sampling = {
        "holdout_days": config.holdout_days,
        "training_span_days": config.training_span_days,
        "max_training_rows": config.max_training_rows,
        "calibration_share": config.calibration_share,
        "seed": config.seed,
    }

    run_tags = {"dagster_run_id": context.run_id, "model_type": model_type, "asset": context.asset_key.to_user_string()}
    with mlflow_resource.start_run(EXPERIMENT, run_name=f"{model_type}-{context.run_id[:8]}", tags=run_tags) as run:
        mlflow.log_params(
            {
                "model_type": model_type,
                "iterations": params.iterations,
                "depth": params.depth,
                "learning_rate": params.learning_rate,
                **sampling,
                **window.as_params(),
                "rows_sampled": len(sample.train) + len(sample.calibration),
                "training_table": "gold.claim_features",
                "training_table_delta_version": sample.delta_version,
                "n_features": len(features),
            }
        )
        mlflow.log_metrics(
            {
                **autoencoder.training_summary,
                "threshold_p95": autoencoder.thresholds["p95"],
                "threshold_p99": autoencoder.thresholds["p99"],
                "forward_flag_rate_p95": forward_flag_rate,
                "forward_rows": float(len(sample.forward)),
            }
        )
        mlflow.log_dict(
            {
                "numeric_features": autoencoder.num_features,
                "categorical_features": autoencoder.cat_features,
                "context_features": autoencoder.context_features,  # inputs only, not reconstructed
                "thresholds": autoencoder.thresholds,
                "forward_flag_rates": [rate.as_dict() for rate in forward_rates],
            },
            "features.json",
        )
        # feature columns only: no claim ids, member keys or dates leave the lakehouse
        example = sample.calibration[features].head(5).reset_index(drop=True)
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
    non_finite = int((~np.isfinite(calibration_scores)).sum() + (~np.isfinite(forward_scores)).sum())
    context.log.info(
        f"{model_type}: logged MLflow run {run_id}; flags {forward_flag_rate:.1%} of the held-out days' claims at p95"
    )
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "model_uri": info.model_uri,
            "model_version": run_id,
            "model_type": model_type,
            **window.as_params(),
            "training_sample": dg.MetadataValue.json(sampling),
            "train_rows": dg.MetadataValue.int(len(sample.train)),
            "calibration_rows": dg.MetadataValue.int(len(sample.calibration)),
            "forward_rows": dg.MetadataValue.int(len(sample.forward)),
            "training_table_delta_version": dg.MetadataValue.int(sample.delta_version),
            "threshold_p95": dg.MetadataValue.float(autoencoder.thresholds["p95"]),
            "threshold_p99": dg.MetadataValue.float(autoencoder.thresholds["p99"]),
            "non_finite_scores": dg.MetadataValue.int(non_finite),
            "calibration_flag_rate_p95": dg.MetadataValue.float(
                rounded(autoencoder.training_summary["calibration_flag_rate_p95"])
            ),
            "forward_flag_rate_p95": dg.MetadataValue.float(forward_flag_rate),
            "forward_flag_rates": dg.MetadataValue.json([rate.as_dict() for rate in forward_rates]),
            "forward_flag_rate_table": dg.MetadataValue.md(_flag_rate_table(forward_rates)),
            "features": dg.MetadataValue.json(features),
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


def _window_from_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey) -> TrainingWindow:
    def day(name: str) -> date:
        return date.fromisoformat(str(latest_metadata_value(context, key, name)))

    days = int(latest_metadata_value(context, key, "training_received_days"))
    return TrainingWindow(day("first_training_day"), day("last_training_day"), day("first_forward_day"), days)


def _detector_result(
    is_fraud: np.ndarray, patterns: pd.Series, days: pd.Series, scores: np.ndarray, flagged: np.ndarray
) -> dict:
    """Ranking metrics, recall per pattern of the flags and the flag rate of every forward day."""
    rates = day_flag_rates(daily_flag_counts(days, flagged))
    return {
        **detection_metrics(is_fraud, scores),
        "flag_rate": float(np.mean(flagged)),
        "recall_at_p95_by_pattern": recall_by_pattern(patterns, flagged),
        "flag_rate_by_day": {rate.day.isoformat(): round(rate.rate, 4) for rate in rates},
    }


@dg.asset(
    key=EVALUATION_KEY,
    deps=[*MODEL_KEYS.values(), CLAIM_FEATURES_KEY, FRAUD_LABELS_KEY],
    description="Both autoencoders, an IsolationForest and a baseline of SIU rules judged forward against the "
    "injected fraud labels, on the days after the models' training window (held out of training: no model saw "
    "them): ROC-AUC, PR-AUC, precision at the top 1 % and 5 %, recall per fraud pattern, flag rate per day.",
    group_name=FRAUD_GROUP,
    kinds={"mlflow", "scikitlearn", "python"},
    owners=FRAUD_OWNERS,
)
def fraud_model_evaluation(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    models = {t: load_fraud_model(latest_metadata_value(context, MODEL_KEYS[t], "model_uri")) for t in MODEL_TYPES}
    run_ids = {t: latest_metadata_value(context, MODEL_KEYS[t], "mlflow_run_id") for t in MODEL_TYPES}
    reference = MODEL_KEYS["catboost"]
    window = _window_from_metadata(context, reference)
    sampling = latest_metadata_value(context, reference, "training_sample")
    features = models["catboost"].features
    # the baseline learns from the models' own sample: the same table version, window and seed
    sample = training_sample(
        lakehouse,
        features,
        FraudTrainingConfig(**sampling),
        version=int(latest_metadata_value(context, reference, "training_table_delta_version")),
    )
    if sample.window != window:
        raise dg.Failure(f"the training window {sample.window} does not match the models' {window}: retrain them")
    # forward: every day from the first held-out day, including days received since the models trained
    evaluate: pd.DataFrame = (
        feature_frame(lakehouse.storage().read(CLAIM_FEATURES), ["claim_id", PARTITION_COLUMN], features)
        .where(F.col(PARTITION_COLUMN) >= F.lit(window.first_forward_day))
        .orderBy(PARTITION_COLUMN, "claim_id")
        .toPandas()
    )
    forward_days = sorted(set(evaluate[PARTITION_COLUMN]))
    labels = _fraud_labels(lakehouse.landing_root, forward_days[0], forward_days[-1])
    patterns = evaluate["claim_id"].map(labels)
    is_fraud = patterns.notna().to_numpy()
    if is_fraud.all() or not is_fraud.any():
        raise dg.Failure("the forward days need both labelled fraud and legitimate claims to evaluate the models")

    days = evaluate[PARTITION_COLUMN]
    results: dict[str, dict] = {}
    scores_by_detector: dict[str, np.ndarray] = {}
    client = mlflow.client()
    detectors = len(models) + 2
    for number, (model_type, model) in enumerate(models.items(), start=1):
        context.log.info(f"scoring {len(evaluate)} forward claims with {model_type} ({number} of {detectors})")
        scores, _ = model.compute_fraud_scores(evaluate[features])
        scores_by_detector[model_type] = scores
        results[model_type] = _detector_result(is_fraud, patterns, days, scores, scores > model.thresholds["p95"])
        recall = results[model_type]["recall_at_p95_by_pattern"]
        metrics = {k: v for k, v in results[model_type].items() if isinstance(v, float)}
        for name, value in {**metrics, **{f"recall_p95_{p}": r for p, r in recall.items()}}.items():
            client.log_metric(run_ids[model_type], f"eval_{name}", value)
    context.log.info(
        f"fitting the IsolationForest baseline on {len(sample.train)} claims ({detectors - 1} of {detectors})"
    )
    forest = IsolationForestBaseline(sample.train, sample.calibration)
    forest_scores = forest.scores(evaluate)
    scores_by_detector["isolation_forest"] = forest_scores
    results["isolation_forest"] = _detector_result(is_fraud, patterns, days, forest_scores, forest_scores > forest.p95)
    rule_score = rule_scores(evaluate)
    scores_by_detector["siu_rules"] = rule_score
    results["siu_rules"] = _detector_result(is_fraud, patterns, days, rule_score, rule_score > 0)
    for name, result in results.items():
        context.log.info(
            f"{name}: ROC-AUC {result['roc_auc']:.3f}, PR-AUC {result['pr_auc']:.3f}, flags {result['flag_rate']:.1%}"
        )

    table = dg.MetadataValue.md(
        "| detector | ROC-AUC | PR-AUC | precision@1% | precision@5% | flag rate |\n|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {name} | {r['roc_auc']:.3f} | {r['pr_auc']:.3f} | {r['precision_at_1pct']:.3f} | "
            f"{r['precision_at_5pct']:.3f} | {r['flag_rate']:.1%} |"
            for name, r in results.items()
        )
    )
    return dg.MaterializeResult(
        metadata={
            "evaluation_rows": dg.MetadataValue.int(len(evaluate)),
            "evaluation_fraud_rows": dg.MetadataValue.int(int(is_fraud.sum())),
            "last_training_day": window.last_day.isoformat(),
            "first_evaluation_day": forward_days[0].isoformat(),
            "forward_days": dg.MetadataValue.json([day.isoformat() for day in forward_days]),
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
                roc, "ROC curve on the forward days", "false positive rate", "true positive rate", diagonal=True
            )
        ),
        "pr_curve": charts.figure_markdown(
            charts.curve_figure(
                pr,
                "Precision-recall curve on the forward days",
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
    """Histogram of the run's scores against the model's p95/p99 thresholds and the flag rate of each day scored
    forward (bin and day counts only leave Spark)."""
    histogram = score_chart_histogram(scored, thresholds)
    counts = scoring.daily_flag_counts(scored)
    forward = day_flag_rates({day: c.claims_and_flagged for day, c in counts.items() if not c.in_training_window})
    context.log.info(
        f"scored {histogram.total} claims: {histogram.flagged_p95} above the p95 threshold, "
        f"{histogram.flagged_p99} above p99; {len(forward)} of {len(counts)} day(s) scored forward"
    )
    return {
        "forward_days": dg.MetadataValue.json([rate.day.isoformat() for rate in forward]),
        "days_in_training_window": dg.MetadataValue.json(
            sorted(day.isoformat() for day, c in counts.items() if c.in_training_window)
        ),
        "forward_flag_rate_table": dg.MetadataValue.md(_flag_rate_table(forward)),
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
        "percentile among calibration scores, p95/p99 flags, top contributing features, model version, and whether "
        "the day lies in the model's training window (the other days are scored forward, as the daily job does).",
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
