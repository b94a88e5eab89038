"""Drift gates on the monitoring tables.

* `psi_within_limits` (ERROR): no feature has PSI >= PSI_ERROR on any day of the run. Not blocking, so the
  composite drift score of a drifted day is still computed in the same run; its failure triggers retraining
  through the drift sensor.
* `psi_early_warning` (WARN): no feature has PSI >= PSI_WARN.
* `composite_drift_within_limit` (ERROR, blocking): the composite drift score is at most COMPOSITE_ERROR; it
  stops anything downstream of the drift summary (promotion) in the same run and triggers retraining.
"""

import math

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.common import run_days_if_partitioned
from healthcare_assets.assets.monitoring import DRIFT_SUMMARY_KEY, PSI_METRICS_KEY
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.domain import drift, fairness
from healthcare_assets.metadata import rounded
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
        metadata=gate_metadata(blocking=False),
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
                "max_psi": rounded(float(rows[0]["psi"])) if rows else 0.0,
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
    metadata=gate_metadata(blocking=True),
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
            "max_composite_score": rounded(float(rows[0]["composite_score"])) if rows else 0.0,
            "threshold": drift.COMPOSITE_ERROR,
            "days_over_threshold": len(over),
            "statistical_drift": rounded(float(rows[0]["statistical_drift"])) if rows else 0.0,
            "demographic_drift": rounded(float(rows[0]["demographic_drift"])) if rows else 0.0,
            "performance_drift": rounded(float(rows[0]["performance_drift"])) if rows else 0.0,
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


drift_checks = [psi_within_limits, psi_early_warning, composite_drift_within_limit]
# the gate whose failure requests retraining (DESIGN: composite drift > 0.3 -> retraining); a single gate, so one
# drifted monitoring run requests one retraining run
RETRAINING_GATES = [composite_drift_within_limit.check_key]


# --- fairness gates on governance/fairness_monitoring ----------------------------------------
# Evaluated inside the fairness asset's step (its check specs), from the rows it writes: a separate check step
# would not be ordered before registered_fraud_model, which promotes only on the result.

DI_GATE = "disparate_impact_within_band"
CHI_SQUARE_GATE = "flags_independent_of_group"


def fairness_check_specs(asset: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            DI_GATE,
            asset=asset,
            metadata=gate_metadata(blocking=False),
            description=f"ERROR when a protected group's disparate impact of fraud flags lies outside "
            f"[{fairness.DI_LOWER}, {fairness.DI_UPPER}] on a day of the run. It blocks promotion "
            "(registered_fraud_model re-verifies it, records the refusal and alerts) rather than the run, so a "
            "refusal is always audited.",
        ),
        dg.AssetCheckSpec(
            CHI_SQUARE_GATE,
            asset=asset,
            metadata=gate_metadata(blocking=False),
            description=f"WARN when the chi-square test finds fraud flags depend on a protected attribute "
            f"(p < {fairness.CHI_SQUARE_ALPHA}) on a day of the run.",
        ),
    ]


def disparate_impact_result(rows: list[dict]) -> dg.AssetCheckResult:
    biased = [r for r in rows if r["status"] == fairness.BIAS]
    judged = [r["disparate_impact"] for r in rows if r["status"] in (fairness.FAIR, fairness.BIAS, fairness.REFERENCE)]
    worst = sorted(biased, key=lambda r: -abs(math.log(max(r["disparate_impact"], 1e-9))))[:WORST_SHOWN]
    return dg.AssetCheckResult(
        check_name=DI_GATE,
        passed=bool(rows) and not biased,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if rows else "no fairness rows for the run's days",
        metadata={
            "di_lower": fairness.DI_LOWER,
            "di_upper": fairness.DI_UPPER,
            "min_disparate_impact": float(min(judged)) if judged else 1.0,
            "max_disparate_impact": float(min(max(judged), 1e9)) if judged else 1.0,
            "biased_groups": len(biased),
            "worst_biased": dg.MetadataValue.json(
                [
                    {
                        "day": str(r[PARTITION_COLUMN]),
                        "model": r["model_type"],
                        "attribute": r["attribute"],
                        "group": r["protected_group"],
                        "disparate_impact": round(min(r["disparate_impact"], 1e9), 3),
                    }
                    for r in worst
                ]
            ),
        },
    )


def chi_square_result(rows: list[dict]) -> dg.AssetCheckResult:
    tested = {
        (str(r[PARTITION_COLUMN]), r["model_type"], r["attribute"]): r["chi_square_p_value"]
        for r in rows
        if r["chi_square_p_value"] is not None and not math.isnan(r["chi_square_p_value"])
    }
    dependent = sorted(k for k, p in tested.items() if p < fairness.CHI_SQUARE_ALPHA)
    return dg.AssetCheckResult(
        check_name=CHI_SQUARE_GATE,
        passed=not dependent,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "alpha": fairness.CHI_SQUARE_ALPHA,
            "tests": len(tested),
            "dependent": dg.MetadataValue.json([{"day": d, "model": m, "attribute": a} for d, m, a in dependent]),
            "min_p_value": float(min(tested.values())) if tested else 1.0,
        },
    )


governance_checks = drift_checks  # the fairness gates are evaluated by their asset (check specs)
