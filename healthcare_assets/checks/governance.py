"""Drift gates on the monitoring tables.

* `psi_within_limits` (ERROR): no feature has PSI >= PSI_ERROR on any day of the run. Not blocking, so the
  composite drift score of a drifted day is still computed in the same run; its failure triggers retraining
  through the drift sensor.
* `psi_early_warning` (WARN): no feature has PSI >= PSI_WARN.
* `composite_drift_within_limit` (ERROR, blocking): the composite drift score is at most COMPOSITE_ERROR; it
  stops anything downstream of the drift summary (promotion) in the same run and triggers retraining.
"""

import math
from collections.abc import Sequence

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
# would not be ordered before registered_fraud_model, which promotes only on the result. One set per fraud model:
# a model's promotion reads only its own gates, so one model's biased flags never block the other.

DI_GATE = "disparate_impact_within_band"
CHI_SQUARE_GATE = "flags_independent_of_group"
FPR_GATE = "false_positive_rate_parity"


def fairness_gate_name(gate: str, model_type: str) -> str:
    return f"{gate}_{model_type}"


def fairness_check_specs(asset: dg.AssetKey, model_types: Sequence[str]) -> list[dg.AssetCheckSpec]:
    specs = []
    for model in model_types:
        specs += [
            dg.AssetCheckSpec(
                fairness_gate_name(DI_GATE, model),
                asset=asset,
                metadata=gate_metadata(blocking=False),
                description=f"ERROR when a protected group is flagged more by the {model} model's shipped flags "
                f"(is_flagged_p95) than its reference group: disparate impact above {fairness.DI_UPPER}, confirmed "
                "by the chi-square test, on a day of the run. A group flagged less (below "
                f"{fairness.DI_LOWER}) is reported, never blocking. It blocks the promotion of {model} only "
                "(registered_fraud_model re-verifies it, records a refusal and alerts) rather than the run, so a "
                "refusal is always audited.",
            ),
            dg.AssetCheckSpec(
                fairness_gate_name(CHI_SQUARE_GATE, model),
                asset=asset,
                metadata=gate_metadata(blocking=False),
                description=f"WARN when the chi-square test finds the {model} model's flags depend on a protected "
                f"attribute (p < {fairness.CHI_SQUARE_ALPHA}) on a day of the run, in either direction.",
            ),
            dg.AssetCheckSpec(
                fairness_gate_name(FPR_GATE, model),
                asset=asset,
                metadata=gate_metadata(blocking=False),
                description=f"WARN when, over the labelled days of the run, a protected group's false-positive rate "
                f"(flags among legitimate claims) of the {model} model is above {fairness.FPR_RATIO_UPPER} x its "
                "reference group's, confirmed by the chi-square test; also when no day of the run is labelled.",
            ),
        ]
    return specs


def percent(rate: float | None) -> str:
    return "undefined" if rate is None or math.isnan(rate) else f"{rate:.1%}"


def ratio_text(ratio: float | None, note: str | None) -> float | str:
    """A ratio rounded for people, or why it is undefined."""
    if ratio is None or math.isnan(ratio):
        return note or "undefined"
    return round(ratio, 2)


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _group_row(row: dict, size: str, count: str, rate: str, ratio: str, note: str) -> dict:
    """One group of a gate's metadata: its rate with the denominator, and what it was compared with."""
    return {
        "attribute": row["attribute"],
        "group": row["protected_group"],
        size: int(row["group_size"]),
        count: int(row["flagged"]),
        rate: percent(row["flag_rate"]),
        "compared_with": row["compared_with"],
        "comparison_rate": percent(row["comparison_rate"]),
        ratio: ratio_text(row["disparate_impact"], row[note]),
        "status": row["status"],
    }


def _compared(row: dict, denominator: str) -> str:
    """e.g. `geographic_region=Southwest: 16.0% of 1500 claims vs 5.0% (Central), ratio 3.2`."""
    return (
        f"{row['attribute']}={row['protected_group']}: {percent(row['flag_rate'])} of {row['group_size']} "
        f"{denominator} vs {percent(row['comparison_rate'])} ({row['compared_with']}), ratio "
        f"{ratio_text(row['disparate_impact'], row['disparate_impact_note'])}"
    )


def _day_group(row: dict) -> dict:
    return {
        "day": str(row[PARTITION_COLUMN]),
        **_group_row(row, "claims", "flagged", "flag_rate", "disparate_impact", "disparate_impact_note"),
    }


def _most_over(rows: list[dict]) -> list[dict]:
    """Largest ratio first; an undefined one (flagged against a comparison rate of 0) before every defined one."""
    return sorted(
        rows, key=lambda r: (_defined(r["disparate_impact"]), -(r["disparate_impact"] or 0.0), -r["flag_rate"])
    )


def disparate_impact_result(model_type: str, rows: list[dict]) -> dg.AssetCheckResult:
    """The DI gate of one model over its fairness rows of the run's days."""
    biased = _most_over([r for r in rows if r["status"] == fairness.BIAS])
    below = sorted(
        (r for r in rows if r["status"] == fairness.BELOW_REFERENCE), key=lambda r: r["disparate_impact"] or 0.0
    )
    judged = [r for r in rows if r["status"] in fairness.JUDGED]
    ratios = [r["disparate_impact"] for r in judged if _defined(r["disparate_impact"])]
    if not rows:
        description = f"no fairness rows of {model_type} for the run's days"
    elif biased:
        description = (
            f"{len(biased)} group-day(s) flagged more than their comparison beyond {fairness.DI_UPPER}; worst "
            f"{_compared(biased[0], 'claims')} on {biased[0][PARTITION_COLUMN]}"
        )
    else:
        description = f"no group flagged more than its comparison beyond {fairness.DI_UPPER}"
    return dg.AssetCheckResult(
        check_name=fairness_gate_name(DI_GATE, model_type),
        passed=bool(rows) and not biased,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "model_type": model_type,
            # the promotion counts this gate only for a model version it judged
            "model_versions": dg.MetadataValue.json(sorted({v for r in rows for v in r["model_version"].split(",")})),
            "di_lower": fairness.DI_LOWER,
            "di_upper": fairness.DI_UPPER,
            "judged_group_days": len(judged),
            "biased_groups": len(biased),
            "below_reference_groups": len(below),
            "undefined_ratios": len(judged) - len(ratios),
            "min_disparate_impact": dg.MetadataValue.float(round(min(ratios), 3)) if ratios else None,
            "max_disparate_impact": dg.MetadataValue.float(round(max(ratios), 3)) if ratios else None,
            "worst_biased": dg.MetadataValue.json([_day_group(r) for r in biased[:WORST_SHOWN]]),
            "flagged_less_than_reference": dg.MetadataValue.json([_day_group(r) for r in below[:WORST_SHOWN]]),
        },
    )


def chi_square_result(model_type: str, rows: list[dict]) -> dg.AssetCheckResult:
    tested = {
        (str(r[PARTITION_COLUMN]), r["attribute"]): r["chi_square_p_value"]
        for r in rows
        if _defined(r["chi_square_p_value"])
    }
    dependent = sorted(k for k, p in tested.items() if p < fairness.CHI_SQUARE_ALPHA)
    return dg.AssetCheckResult(
        check_name=fairness_gate_name(CHI_SQUARE_GATE, model_type),
        passed=not dependent,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(dependent)} of {len(tested)} day x attribute tests find the flags depend on the group",
        metadata={
            "model_type": model_type,
            "alpha": fairness.CHI_SQUARE_ALPHA,
            "tests": len(tested),
            "dependent": dg.MetadataValue.json([{"day": d, "attribute": a} for d, a in dependent]),
            "min_p_value": dg.MetadataValue.float(float(f"{min(tested.values()):.3g}")) if tested else None,
        },
    )


def fpr_status(status: str) -> str:
    """A false-positive-rate group's status as shown: a confirmed rate beyond the band is `above_parity`."""
    return "above_parity" if status == fairness.BIAS else status


def _fpr_group(row: dict) -> dict:
    group = _group_row(
        row, "legitimate_claims", "false_positives", "false_positive_rate", "fpr_ratio", "disparate_impact_note"
    )
    return {**group, "status": fpr_status(row["status"])}


def false_positive_rate_result(model_type: str, groups: list[dict], labelled_days: list[str]) -> dg.AssetCheckResult:
    """The FPR parity gate of one model: `groups` are its pooled per-group rows over the labelled days (the
    fairness rows' fields, over legitimate claims only)."""
    above = _most_over([g for g in groups if g["status"] == fairness.BIAS])
    judged = [g for g in groups if g["status"] in fairness.JUDGED]
    if not labelled_days or not groups:
        description = "not judged: no day of the run has fraud labels and legitimate claims"
    elif above:
        description = f"false-positive rate of {_compared(above[0], 'legitimate claims')}"
    else:
        description = f"no group's false-positive rate above {fairness.FPR_RATIO_UPPER} x its comparison"
    return dg.AssetCheckResult(
        check_name=fairness_gate_name(FPR_GATE, model_type),
        passed=bool(labelled_days) and bool(groups) and not above,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "model_type": model_type,
            "fpr_ratio_upper": fairness.FPR_RATIO_UPPER,
            "labelled_days": len(labelled_days),
            "first_labelled_day": min(labelled_days, default="none"),
            "last_labelled_day": max(labelled_days, default="none"),
            "legitimate_claims": sum(g["group_size"] for g in groups if g["attribute"] == groups[0]["attribute"])
            if groups
            else 0,
            "groups_above_parity": len(above),
            "worst_groups": dg.MetadataValue.json([_fpr_group(g) for g in above[:WORST_SHOWN]]),
            "false_positive_rate_by_group": dg.MetadataValue.json([_fpr_group(g) for g in judged]),
        },
    )


governance_checks = drift_checks  # the fairness gates are evaluated by their asset (check specs)
