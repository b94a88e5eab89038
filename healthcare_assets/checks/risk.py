"""Member risk gates: promotion gates on the trained model, monitoring of the daily predictions.

Promotion gates (ERROR, blocking) read the metrics the training run recorded on
its materialisation; `registered_risk_model` re-verifies their results before it
moves the `champion` alias. Bias testing reports high-risk accuracy per
demographic group and warns on a parity gap. The monitoring MAE judges the
members the scoring model did not train on (its recorded hold-out).
"""

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.common import run_days_if_partitioned
from healthcare_assets.assets.outreach import OUTREACH_KEY
from healthcare_assets.assets.risk import (
    MEMBER_RISK_MODEL_KEY,
    MEMBER_RISK_PREDICTIONS_KEY,
    MODEL_NAME,
    REGISTERED_RISK_MODEL_KEY,
    SPLIT_TEST_SHARE_PARAM,
)
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.checks.promotion import champion_is_the_promoted_version
from healthcare_assets.checks.quality import TableRules, _key_check, _rules_check
from healthcare_assets.domain import risk
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import MlflowResource
from healthcare_assets.resources.privacy import PrivacyResource
from healthcare_assets.transforms.risk import is_test_member, risk_labels

PREDICTIONS_REF = TableRef.from_path(MEMBER_RISK_PREDICTIONS_KEY.path)


def _model_metadata(context: dg.AssetCheckExecutionContext) -> dict:
    event = context.instance.get_latest_materialization_event(MEMBER_RISK_MODEL_KEY)
    if event is None or event.asset_materialization is None:
        raise dg.Failure("member_risk_model has no materialisation to check: train it first")
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _promotion_gate(gate: risk.Gate) -> dg.AssetChecksDefinition:
    relation = ">=" if gate.higher_is_better else "<="
    beside = f" (recorded beside {gate.baseline_metric})" if gate.baseline_metric else ""

    @dg.asset_check(
        asset=MEMBER_RISK_MODEL_KEY,
        name=gate.name,
        blocking=True,
        metadata=gate_metadata(blocking=True),
        description=f"Promotion gate: {gate.metric} on held-out members must be {relation} {gate.threshold}{beside}.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = _model_metadata(context)
        result = gate.evaluate_on(metadata["metrics"])
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=result.describe(),
            metadata={
                "observed": result.observed,
                "threshold": result.threshold,
                "margin": result.margin,
                **({result.baseline_metric: result.baseline} if result.baseline_metric else {}),
                "model_version": metadata["model_version"],
            },
        )

    return _check


# Blocking although a WARN check: registered_risk_model reads this result from the instance, and only a blocking
# check is an execution dependency of the assets downstream of its asset. Non-blocking, the multiprocess executor
# could run the promotion before the check had judged this model (it would then refuse for want of a result, or
# promote on nothing). A WARN failure never stops downstream steps, so the promotion still runs, records the
# refusal and alerts (warn_blocks) instead of the run failing.
@dg.asset_check(
    metadata=gate_metadata(blocking=True),
    asset=MEMBER_RISK_MODEL_KEY,
    blocking=True,
    description="Bias testing: high-risk accuracy per gender, region and age group; warns when a gender or region "
    f"group is more than {risk.MAX_GROUP_ACCURACY_GAP} below the overall accuracy (a promotion gate: the promotion "
    "waits for it and refuses on a warning).",
)
def high_risk_accuracy_parity(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    import pandas as pd

    table = pd.DataFrame(_model_metadata(context)["accuracy_by_group"])
    below = risk.groups_below_parity(table)
    return dg.AssetCheckResult(
        passed=below.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description="accuracy parity holds"
        if below.empty
        else "accuracy gap above parity for " + ", ".join(f"{r.attribute}={r.group}" for r in below.itertuples()),
        metadata={
            "max_gap": risk.MAX_GROUP_ACCURACY_GAP,
            "groups_below_parity": dg.MetadataValue.json(below.to_dict("records")),
            "accuracy_by_group": dg.MetadataValue.md(table.to_markdown(index=False)),
        },
    )


@dg.asset_check(
    metadata=gate_metadata(blocking=True),
    asset=MEMBER_RISK_PREDICTIONS_KEY,
    blocking=True,
    description=f"Monitoring: every scored day holds at least {risk.MIN_DAILY_PREDICTIONS} predictions.",
)
def daily_prediction_volume(
    context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
) -> dg.AssetCheckResult:
    storage = lakehouse.storage()
    days = run_days_if_partitioned(context)
    frame = storage.read(PREDICTIONS_REF, *((days[0], days[-1]) if days else ()))
    counts = {row[PARTITION_COLUMN]: row["count"] for row in frame.groupBy(PARTITION_COLUMN).count().collect()}
    expected = days if days else sorted(counts)
    low = {day.isoformat(): counts.get(day, 0) for day in expected if counts.get(day, 0) < risk.MIN_DAILY_PREDICTIONS}
    return dg.AssetCheckResult(
        passed=not low,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "min_daily_predictions": risk.MIN_DAILY_PREDICTIONS,
            "predictions_by_day": dg.MetadataValue.json({day.isoformat(): n for day, n in sorted(counts.items())}),
            "days_below_minimum": dg.MetadataValue.json(low),
        },
    )


def _held_out_shares(mlflow: MlflowResource, versions: list[str]) -> dict[str, float | None]:
    """Registry version -> the hold-out share its training run recorded (None when it recorded none)."""
    client = mlflow.client()
    shares: dict[str, float | None] = {}
    for version in versions:
        registered = client.get_model_version(mlflow.registered_name(MODEL_NAME), version)
        params = client.get_run(registered.run_id).data.params
        shares[version] = float(params[SPLIT_TEST_SHARE_PARAM]) if SPLIT_TEST_SHARE_PARAM in params else None
    return shares


@dg.asset_check(
    metadata=gate_metadata(blocking=True),
    asset=MEMBER_RISK_PREDICTIONS_KEY,
    blocking=True,
    description=f"Monitoring: risk-score MAE against each day's actuarial risk file stays <= {risk.MAX_MONITORED_MAE}, "
    "over the members the scoring model did not train on (its recorded hash hold-out).",
)
def risk_score_mae_drift(
    context: dg.AssetCheckExecutionContext,
    lakehouse: LakehouseResource,
    privacy: PrivacyResource,
    mlflow: MlflowResource,
) -> dg.AssetCheckResult:
    storage = lakehouse.storage()
    days = run_days_if_partitioned(context)
    predictions = storage.read(PREDICTIONS_REF, *((days[0], days[-1]) if days else ()))
    days = days or sorted(row[0] for row in predictions.select(PARTITION_COLUMN).distinct().collect())
    versions = sorted(str(row[0]) for row in predictions.select("model_version").distinct().collect())
    shares = _held_out_shares(mlflow, versions)
    unknown = [version for version, share in shares.items() if share is None]
    held_out = F.lit(False)
    for version, share in shares.items():
        if share is not None:
            held_out = held_out | ((F.col("model_version") == version) & is_test_member(F.col("member_key"), share))
    mae_by_day, members_by_day, unlabelled = {}, {}, []
    for day in days:
        try:
            labels = risk_labels(predictions.sparkSession, lakehouse.landing_root, day, privacy.key())
        except FileNotFoundError:
            unlabelled.append(day.isoformat())
            continue
        scored = predictions.where((F.col(PARTITION_COLUMN) == F.lit(day)) & held_out).select(
            "member_key", "risk_score"
        )
        row = (
            scored.join(labels.withColumnRenamed("risk_score", "label"), "member_key")
            .agg(F.avg(F.abs(F.col("risk_score") - F.col("label"))).alias("mae"), F.count("*").alias("n"))
            .collect()[0]
        )
        members_by_day[day.isoformat()] = int(row["n"])
        if row["n"]:
            mae_by_day[day.isoformat()] = round(float(row["mae"]), 4)
    drifted = {day: mae for day, mae in mae_by_day.items() if mae > risk.MAX_MONITORED_MAE}
    if unknown:
        description = f"model version(s) {', '.join(unknown)} recorded no train/test split: retrain to monitor them"
    elif not mae_by_day:
        description = "not judged: no held-out member has a label on the run's days"
    else:
        description = f"MAE over {min(members_by_day.values())}-{max(members_by_day.values())} held-out members a day"
    return dg.AssetCheckResult(
        passed=not drifted and not unknown,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "max_mae": risk.MAX_MONITORED_MAE,
            "mae_by_day": dg.MetadataValue.json(mae_by_day),
            "held_out_members_by_day": dg.MetadataValue.json(members_by_day),
            "test_share": dg.MetadataValue.json({version: share for version, share in shares.items()}),
            "worst_mae": max(mae_by_day.values(), default=0.0),
            "days_above_max": dg.MetadataValue.json(drifted),
            "days_without_labels": dg.MetadataValue.json(unlabelled),
        },
    )


# Table gates: keys unique (no member twice in the outreach list) and values in range.
RISK_TABLES = [
    TableRules(
        MEMBER_RISK_PREDICTIONS_KEY,
        ("member_key", PARTITION_COLUMN),
        {
            "risk_score_in_range": "risk_score BETWEEN 0 AND 100",
            "high_risk_score_is_probability": "high_risk_score BETWEEN 0 AND 1",
            "predicted_cost_not_negative": "predicted_total_cost >= 0",
            "model_version_present": "model_version IS NOT NULL",
        },
    ),
    TableRules(
        OUTREACH_KEY,
        ("member_key",),
        {
            "tier_known": "outreach_tier IN (1, 2, 3)",
            "priority_in_range": "outreach_priority_score BETWEEN 0 AND 100",
            "something_due": "size(due_vaccines) > 0",
            "tier_explained": "length(tier_reason) > 0",
        },
    ),
]


risk_checks = [
    *[_key_check(table) for table in RISK_TABLES],
    *[_rules_check(table, table.rules, dg.AssetCheckSeverity.ERROR) for table in RISK_TABLES],
    champion_is_the_promoted_version(REGISTERED_RISK_MODEL_KEY, MODEL_NAME),
    *[_promotion_gate(gate) for gate in risk.PROMOTION_GATES],
    high_risk_accuracy_parity,
    daily_prediction_volume,
    risk_score_mae_drift,
]
