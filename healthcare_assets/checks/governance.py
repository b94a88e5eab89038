"""Drift gates on the monitoring tables.

* `psi_within_limits` (ERROR): no feature has PSI >= PSI_ERROR on any day of the run. Not blocking, so the
  composite drift score of a drifted day is still computed in the same run; its failure triggers retraining
  through the drift sensor.
* `psi_early_warning` (WARN): no feature has PSI >= PSI_WARN.
* `composite_drift_within_limit` (ERROR, blocking): the composite drift score is at most COMPOSITE_ERROR; it
  stops anything downstream of the drift summary (promotion) in the same run and triggers retraining.
"""

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.common import run_days_if_partitioned
from healthcare_assets.assets.monitoring import DRIFT_SUMMARY_KEY, PSI_METRICS_KEY
from healthcare_assets.domain import drift
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource

WORST_SHOWN = 5


def _rows(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource, key: dg.AssetKey, order: str):
    """The stored rows of the run's days (every day outside a partitioned run), largest `order` first."""
    days = run_days_if_partitioned(context)
    frame = lakehouse.storage().read(TableRef.from_path(key.path), *((days[0], days[-1]) if days else ()))
    return frame.orderBy(F.col(order).desc()).collect()


def _psi_description(stored: list, gated: list) -> str | None:
    if not stored:
        return "no PSI metrics stored for the run's days"
    if not gated:
        return "no gated PSI: every window had too few rows or its features are still warming up"
    return None


def _psi_check(name: str, threshold: float, severity: dg.AssetCheckSeverity) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=PSI_METRICS_KEY,
        name=name,
        description=f"Every gated feature has PSI < {threshold} on every day of the run ({severity.value}; the "
        "reference window is recorded in each row; trailing-history features are gated once their history is full).",
    )
    def _check(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        stored = _rows(context, lakehouse, PSI_METRICS_KEY, "psi")
        rows = [r for r in stored if r["gated"]]
        over = [r for r in rows if r["psi"] >= threshold]
        worst = [
            {"day": str(r[PARTITION_COLUMN]), "feature": r["feature"], "psi": round(r["psi"], 4)}
            for r in rows[:WORST_SHOWN]
        ]
        return dg.AssetCheckResult(
            passed=bool(stored) and not over,
            severity=severity,
            description=_psi_description(stored, rows),
            metadata={
                "ungated_rows": len(stored) - len(rows),
                "max_psi": float(rows[0]["psi"]) if rows else 0.0,
                "threshold": threshold,
                "features_over_threshold": len(over),
                "days_over_threshold": len({r[PARTITION_COLUMN] for r in over}),
                "worst_features": dg.MetadataValue.json(worst),
            },
        )

    return _check


psi_within_limits = _psi_check("psi_within_limits", drift.PSI_ERROR, dg.AssetCheckSeverity.ERROR)
psi_early_warning = _psi_check("psi_early_warning", drift.PSI_WARN, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=DRIFT_SUMMARY_KEY,
    name="composite_drift_within_limit",
    description=f"The composite drift score is at most {drift.COMPOSITE_ERROR} on every day of the run "
    "(ERROR, blocking: retraining is requested, promotion downstream stops).",
    blocking=True,
)
def composite_drift_within_limit(
    context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
) -> dg.AssetCheckResult:
    stored = _rows(context, lakehouse, DRIFT_SUMMARY_KEY, "composite_score")
    rows = [r for r in stored if r["composite_score"] is not None]
    over = [r for r in rows if r["composite_score"] > drift.COMPOSITE_ERROR]
    return dg.AssetCheckResult(
        passed=bool(stored) and not over,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if stored else "no drift summary stored for the run's days",
        metadata={
            "days_insufficient_data": len(stored) - len(rows),
            "max_composite_score": float(rows[0]["composite_score"]) if rows else 0.0,
            "threshold": drift.COMPOSITE_ERROR,
            "days_over_threshold": len(over),
            "statistical_drift": float(rows[0]["statistical_drift"]) if rows else 0.0,
            "demographic_drift": float(rows[0]["demographic_drift"]) if rows else 0.0,
            "performance_drift": float(rows[0]["performance_drift"]) if rows else 0.0,
            "worst_days": dg.MetadataValue.json(
                [
                    {
                        "day": str(r[PARTITION_COLUMN]),
                        "composite_score": round(r["composite_score"], 4),
                        "worst_feature": r["worst_feature"],
                        "worst_psi": round(r["worst_psi"], 4),
                    }
                    for r in rows[:WORST_SHOWN]
                ]
            ),
            "weights": dg.MetadataValue.json(
                {
                    "statistical": drift.W_STATISTICAL,
                    "demographic": drift.W_DEMOGRAPHIC,
                    "performance": drift.W_PERFORMANCE,
                }
            ),
        },
    )


governance_checks = [psi_within_limits, psi_early_warning, composite_drift_within_limit]
# the gate whose failure requests retraining (DESIGN: composite drift > 0.3 -> retraining); a single gate, so one
# drifted monitoring run requests one retraining run
RETRAINING_GATES = [composite_drift_within_limit.check_key]
