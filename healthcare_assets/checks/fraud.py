"""Fraud-model gates: enough training data, sane scores without labels, and the evaluation gate that each
autoencoder must beat the IsolationForest baseline (blocking: a losing model scores nothing in that run)."""

import math

import dagster as dg

from healthcare_assets.assets.fraud import EVALUATION_KEY, MODEL_KEYS, MODEL_TYPES
from healthcare_assets.catalog import gate_metadata

# Fewer training claims than this make per-feature models (and their p99) meaningless.
MIN_TRAINING_ROWS = 200
# Below this many labelled frauds in the evaluation days the comparison is noise: the gate warns instead.
MIN_EVALUATION_FRAUD_ROWS = 20


def _latest_metadata(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict:
    event = context.instance.get_latest_materialization_event(key)
    if event is None:
        raise dg.Failure(f"{key.to_user_string()} has not been materialised yet")
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _model_checks(model_type: str) -> list[dg.AssetChecksDefinition]:
    key = MODEL_KEYS[model_type]

    @dg.asset_check(
        asset=key,
        name="training_data_volume",
        blocking=True,
        metadata=gate_metadata(blocking=True),
        description=f"The model trained on at least {MIN_TRAINING_ROWS} claims and validated on some.",
    )
    def training_data_volume(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = _latest_metadata(context, key)
        train_rows, validation_rows = metadata["train_rows"], metadata["validation_rows"]
        return dg.AssetCheckResult(
            passed=train_rows >= MIN_TRAINING_ROWS and validation_rows > 0,
            metadata={"train_rows": train_rows, "validation_rows": validation_rows, "minimum": MIN_TRAINING_ROWS},
        )

    @dg.asset_check(
        asset=key,
        name="scores_sane",
        blocking=True,
        metadata=gate_metadata(blocking=True),
        description="Without labels: validation scores are finite and the p95 threshold is below the p99 one.",
    )
    def scores_sane(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = _latest_metadata(context, key)
        p95, p99 = metadata["threshold_p95"], metadata["threshold_p99"]
        non_finite = metadata["validation_non_finite_scores"]
        return dg.AssetCheckResult(
            passed=non_finite == 0 and math.isfinite(p95) and math.isfinite(p99) and p95 < p99,
            metadata={"threshold_p95": p95, "threshold_p99": p99, "non_finite_scores": non_finite},
        )

    return [training_data_volume, scores_sane]


@dg.asset_check(
    asset=EVALUATION_KEY,
    name="beats_isolation_forest",
    blocking=True,
    metadata=gate_metadata(blocking=True),
    description="Each autoencoder's ROC-AUC on the validation days beats the IsolationForest baseline's "
    f"(a warning instead when the days hold fewer than {MIN_EVALUATION_FRAUD_ROWS} labelled frauds).",
)
def beats_isolation_forest(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    metadata = _latest_metadata(context, EVALUATION_KEY)
    if metadata["evaluation_fraud_rows"] < MIN_EVALUATION_FRAUD_ROWS:
        # too few labelled frauds for ROC-AUC to mean anything: say so without blocking
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"only {metadata['evaluation_fraud_rows']} labelled fraud claims in the evaluation days",
            metadata={"evaluation_fraud_rows": metadata["evaluation_fraud_rows"], "minimum": MIN_EVALUATION_FRAUD_ROWS},
        )
    baseline = metadata["isolation_forest_roc_auc"]
    margins = {model_type: metadata[f"{model_type}_roc_auc"] - baseline for model_type in MODEL_TYPES}
    losing = sorted(model_type for model_type, margin in margins.items() if margin <= 0)
    return dg.AssetCheckResult(
        passed=not losing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"not better than IsolationForest: {', '.join(losing)}" if losing else None,
        metadata={
            "isolation_forest_roc_auc": baseline,
            **{f"{model_type}_roc_auc": metadata[f"{model_type}_roc_auc"] for model_type in MODEL_TYPES},
            **{f"{model_type}_margin": margin for model_type, margin in margins.items()},
        },
    )


fraud_checks = [*_model_checks("catboost"), *_model_checks("xgboost"), beats_isolation_forest]
