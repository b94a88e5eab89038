"""Fraud-model gates (all ERROR and blocking):

* on each model: enough training and calibration claims, sane scores without labels, and the flag rate at p95 on
  every held-out day (claims the model never saw) within FLAG_RATE_BAND;
* on each scored table `gold/fraud_scores_*`: the p95 flag rate of every day of the run scored forward within
  FLAG_RATE_BAND (the days are named; an alert goes out), so a model whose thresholds do not carry over to new
  days stops downstream of its scores and cannot be promoted;
* on the evaluation: each autoencoder beats the IsolationForest baseline forward.

A day is out of band only when its whole 95 % Wilson interval is: a day of a few dozen claims is not failed for
one flagged claim more or less. `promotion_gates` is what a fraud model's promotion re-verifies.
"""

import math

import dagster as dg

from healthcare_assets.assets import promotion
from healthcare_assets.assets.common import run_days_if_partitioned
from healthcare_assets.assets.fraud import EVALUATION_KEY, MODEL_KEYS, MODEL_TYPES, SCORE_KEYS
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.domain.fraud_evaluation import FLAG_RATE_BAND, DayFlagRate, day_flag_rates
from healthcare_assets.resources.alerts import Alert, AlertsResource
from healthcare_assets.resources.delta import TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.transforms import scoring

# Fewer training claims than this make per-feature models meaningless, fewer calibration claims their p99.
MIN_TRAINING_ROWS = 200
MIN_CALIBRATION_ROWS = 100
# Below this many labelled frauds in the evaluation days the comparison is noise: the gate warns instead.
MIN_EVALUATION_FRAUD_ROWS = 20
MODEL_GATES = ("training_data_volume", "scores_sane", "forward_flag_rate_in_band")
SCORED_TABLE_GATE = "flag_rate_in_band"
BEATS_BASELINE = "beats_isolation_forest"
_BAND = f"{FLAG_RATE_BAND[0]:.0%}-{FLAG_RATE_BAND[1]:.0%}"


def _gate(asset: dg.AssetKey, name: str, description: str):
    """An ERROR gate that blocks everything downstream of its asset in the same run."""
    return dg.asset_check(
        asset=asset, name=name, blocking=True, metadata=gate_metadata(blocking=True), description=description
    )


def _latest_metadata(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict:
    event = context.instance.get_latest_materialization_event(key)
    if event is None:
        raise dg.Failure(f"{key.to_user_string()} has not been materialised yet")
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _out_of_band(rates: list[DayFlagRate]) -> str:
    """The days out of band, named with their rate: '2026-01-12 (14.2 %), ...'."""
    return ", ".join(f"{rate.day} ({rate.rate:.1%})" for rate in rates if not rate.within_band)


def _flag_rate_metadata(rates: list[DayFlagRate]) -> dict:
    outside = [rate for rate in rates if not rate.within_band]
    worst = max(rates, key=lambda rate: abs(rate.rate - sum(FLAG_RATE_BAND) / 2), default=None)
    return {
        "band": _BAND,
        "days_judged": len(rates),
        "days_out_of_band": dg.MetadataValue.json([rate.day.isoformat() for rate in outside]),
        "worst_day": worst.day.isoformat() if worst else "none",
        "worst_flag_rate": round(worst.rate, 4) if worst else 0.0,
        "flag_rates": dg.MetadataValue.json([rate.as_dict() for rate in rates]),
    }


def _model_checks(model_type: str) -> list[dg.AssetChecksDefinition]:
    key = MODEL_KEYS[model_type]

    @_gate(
        key,
        "training_data_volume",
        f"The model fitted at least {MIN_TRAINING_ROWS} claims, calibrated on at least "
        f"{MIN_CALIBRATION_ROWS} others and was judged on some held-out claims.",
    )
    def training_data_volume(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = _latest_metadata(context, key)
        train, calibration, forward = (metadata[f"{n}_rows"] for n in ("train", "calibration", "forward"))
        return dg.AssetCheckResult(
            passed=train >= MIN_TRAINING_ROWS and calibration >= MIN_CALIBRATION_ROWS and forward > 0,
            metadata={
                "train_rows": train,
                "calibration_rows": calibration,
                "forward_rows": forward,
                "minimum_train_rows": MIN_TRAINING_ROWS,
                "minimum_calibration_rows": MIN_CALIBRATION_ROWS,
            },
        )

    @_gate(
        key,
        "scores_sane",
        "Without labels: calibration and held-out scores are finite and the p95 threshold is below p99.",
    )
    def scores_sane(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = _latest_metadata(context, key)
        p95, p99 = metadata["threshold_p95"], metadata["threshold_p99"]
        non_finite = metadata["non_finite_scores"]
        return dg.AssetCheckResult(
            passed=non_finite == 0 and math.isfinite(p95) and math.isfinite(p99) and p95 < p99,
            metadata={"threshold_p95": p95, "threshold_p99": p99, "non_finite_scores": non_finite},
        )

    @_gate(
        key,
        "forward_flag_rate_in_band",
        f"On every held-out day (claims the model never saw) the p95 threshold flags {_BAND} of the "
        "claims: the thresholds, set on calibration claims, carry over to new days.",
    )
    def forward_flag_rate_in_band(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = _latest_metadata(context, key)
        rates = [DayFlagRate.from_dict(entry) for entry in metadata["forward_flag_rates"]]
        outside = _out_of_band(rates)
        return dg.AssetCheckResult(
            passed=bool(rates) and not outside,
            description=f"p95 flag rate outside {_BAND} on {outside}" if outside else None,
            metadata={**_flag_rate_metadata(rates), "calibration_flag_rate_p95": metadata["calibration_flag_rate_p95"]},
        )

    return [training_data_volume, scores_sane, forward_flag_rate_in_band]


def _scored_model_versions(scores) -> list[str]:
    return sorted(row[0] for row in scores.select("model_version").distinct().collect())


def _scored_table_check(model_type: str) -> dg.AssetChecksDefinition:
    key = SCORE_KEYS[model_type]

    @_gate(
        key,
        SCORED_TABLE_GATE,
        f"Every day of the run scored forward (outside the model's training window) has {_BAND} of its "
        "claims flagged at p95; failing days are named and alerted. Days in the training window are not judged.",
    )
    def flag_rate_in_band(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource, alerts: AlertsResource
    ) -> dg.AssetCheckResult:
        storage = lakehouse.storage()
        ref = TableRef.from_path(key.path)
        if not storage.exists(ref):
            return dg.AssetCheckResult(passed=True, metadata={"table_materialised": False, "days_judged": 0})
        days = run_days_if_partitioned(context)
        scores = storage.read(ref, *((days[0], days[-1]) if days else ()))
        counts = scoring.daily_flag_counts(scores)
        rates = day_flag_rates({day: c.claims_and_flagged for day, c in counts.items() if not c.in_training_window})
        outside = _out_of_band(rates)
        metadata = {
            **_flag_rate_metadata(rates),
            "days_in_training_window": sum(c.in_training_window for c in counts.values()),
            "model_versions": dg.MetadataValue.json(_scored_model_versions(scores)),
        }
        if outside:
            alerts.send(
                Alert(
                    title=f"{key.to_user_string()}: p95 flag rate outside {_BAND} on {outside}",
                    severity="error",
                    asset=key.to_user_string(),
                    check=SCORED_TABLE_GATE,
                    job=context.run.job_name,
                    run_id=context.run.run_id,
                    link=alerts.run_link(context.run.run_id),
                    numbers={"days_out_of_band": sum(not rate.within_band for rate in rates)},
                    dedup_key=f"flag-rate:{model_type}:{context.run.run_id}",
                )
            )
        description = None
        if outside:
            description = f"p95 flag rate outside {_BAND} on {outside}"
        elif not rates:
            description = "no day of the run was scored forward: every one is in the model's training window"
        return dg.AssetCheckResult(
            passed=not outside, severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata
        )

    return flag_rate_in_band


@_gate(
    EVALUATION_KEY,
    BEATS_BASELINE,
    "Each autoencoder's ROC-AUC on the forward days beats the IsolationForest baseline's "
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


def _judged_versions(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> set[str]:
    evaluation = promotion.latest_evaluation(instance, check_key)
    versions = evaluation.metadata.get("model_versions") if evaluation is not None else None
    value = versions.value if versions is not None else None
    return {str(v) for v in value} if isinstance(value, list) else set()


def promotion_gates(instance: dg.DagsterInstance, model_type: str, model_version: str) -> list[promotion.GateResult]:
    """The fraud gates a promotion of `model_type` re-verifies: its model gates, the evaluation against the
    baseline, and its scored table's flag-rate gate, which must have judged this model version's scores."""
    keys = [dg.AssetCheckKey(MODEL_KEYS[model_type], name) for name in MODEL_GATES]
    keys.append(dg.AssetCheckKey(EVALUATION_KEY, BEATS_BASELINE))
    gates = [promotion.verify_gate(instance, key) for key in keys]
    scored_key = dg.AssetCheckKey(SCORE_KEYS[model_type], SCORED_TABLE_GATE)
    scored = promotion.verify_gate(instance, scored_key)
    if scored is not None and scored.passed and model_version not in _judged_versions(instance, scored_key):
        scored = promotion.GateResult(scored.gate, False, "did not judge this model's scores")
    return [gate for gate in (*gates, scored) if gate is not None]


fraud_checks = [
    *(check for model_type in MODEL_TYPES for check in _model_checks(model_type)),
    *(_scored_table_check(model_type) for model_type in MODEL_TYPES),
    beats_isolation_forest,
]
