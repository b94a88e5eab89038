"""Data-quality gates on every table.

ERROR checks are blocking: when one fails, nothing downstream of that table
runs in the same run. Freshness and quarantine rate are warnings.
"""

from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.bronze import BRONZE_KEYS, QUARANTINE_KEY
from healthcare_assets.assets.common import run_days_if_partitioned
from healthcare_assets.assets.fraud import SCORE_KEYS
from healthcare_assets.assets.gold import (
    CLAIM_AGGREGATE_KEYS,
    CLAIM_FEATURES_KEY,
    MEMBER_FEATURES_KEY,
    MEMBER_RX_DAILY_KEY,
    MEMBER_WINDOW_KEY,
)
from healthcare_assets.assets.governance import FAIRNESS_MONITORING_KEY
from healthcare_assets.assets.monitoring import DRIFT_SUMMARY_KEY, PSI_METRICS_KEY
from healthcare_assets.assets.promotion import MODEL_AUDIT_LOG_KEY
from healthcare_assets.assets.reports import GATE_SUMMARY_KEY
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, SILVER_KEYS
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.metadata import share
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.transforms import gold, quality
from healthcare_assets.transforms.bronze import count_landing_lines, landed_days
from healthcare_assets.transforms.silver import received_not_before, silver_key

# A feed whose quarantined share of lines exceeds this warns (a broken upstream extract, not a few bad rows).
MAX_QUARANTINE_SHARE = 0.05


QUARANTINE_KEY_REF = TableRef.from_path(QUARANTINE_KEY.path)


def _stored_days(storage, ref: TableRef) -> list[date]:
    return sorted(row[0] for row in storage.read(ref).select(PARTITION_COLUMN).distinct().collect())


def _quarantined_by_day(storage, source_name: str, days: list[date]) -> dict[date, int]:
    if not days:
        return {}
    return storage.count_by_day(QUARANTINE_KEY_REF, days[0], days[-1], where=F.col("source") == source_name)


@dataclass(frozen=True)
class TableRules:
    key: dg.AssetKey
    primary_key: tuple[str, ...]
    rules: dict[str, str] = field(default_factory=dict)  # wrong data: ERROR, blocking
    warnings: dict[str, str] = field(default_factory=dict)  # worth a look: WARN
    # daily partitioned: a partitioned run's gates judge the run's days (the key against the partitions that can
    # hold it); unpartitioned tables are rewritten whole and judged whole
    partitioned: bool = False
    # a date column never after the day a row was received (bounds where else its key can be)
    received_not_before: str | None = None


def _amount_rules(*columns: str) -> dict[str, str]:
    return {f"{c}_not_negative": f"{c} >= 0" for c in columns}


TABLE_RULES = [
    TableRules(
        SILVER_KEYS["medical_claims"],
        silver_key(SOURCES["medical_claims"]),
        partitioned=True,
        received_not_before=received_not_before(SOURCES["medical_claims"]),
        rules={
            **_amount_rules("claim_amount"),
            "paid_not_above_billed": "paid_amount IS NULL OR paid_amount <= claim_amount",
            "service_not_after_receipt": f"service_end_date <= {PARTITION_COLUMN}",
            "service_dates_ordered": "service_start_date <= service_end_date",
        },
    ),
    TableRules(
        SILVER_KEYS["pharmacy_claims"],
        silver_key(SOURCES["pharmacy_claims"]),
        partitioned=True,
        received_not_before=received_not_before(SOURCES["pharmacy_claims"]),
        rules={
            **_amount_rules("rx_amount"),
            "days_supply_positive": "days_supply > 0",
            "fill_not_after_receipt": f"fill_date <= {PARTITION_COLUMN}",
        },
    ),
    TableRules(
        SILVER_KEYS["member_eligibility"],
        silver_key(SOURCES["member_eligibility"]),
        partitioned=True,
        rules={
            "birth_year_plausible": "birth_year BETWEEN 1900 AND year(ingest_date)",
            "bmi_plausible": "bmi IS NULL OR bmi BETWEEN 10 AND 80",
        },
    ),
    TableRules(
        SILVER_KEYS["immunizations"],
        silver_key(SOURCES["immunizations"]),
        partitioned=True,
        received_not_before=received_not_before(SOURCES["immunizations"]),
        rules={
            "administered_not_after_receipt": f"administered_date <= {PARTITION_COLUMN}",
        },
    ),
    TableRules(DIM_MEMBERS_KEY, ("member_key", "version")),
    TableRules(
        CLAIM_FEATURES_KEY,
        ("claim_id",),
        partitioned=True,
        received_not_before="claim_date",
        rules={
            **_amount_rules("claim_amount", "claim_rate_90d", "claim_duration_days"),
            "patient_age_plausible": "patient_age IS NULL OR patient_age BETWEEN 0 AND 120",
        },
        warnings={
            # a claim whose member's enrolment record has not loaded (e.g. it is in quarantine)
            "member_enrolled": "patient_gender IS NOT NULL AND geographic_region IS NOT NULL",
        },
    ),
    # the daily aggregates: one row per group and received day
    TableRules(CLAIM_AGGREGATE_KEYS["member_lines"], (*gold.VISIT_LINE, PARTITION_COLUMN), partitioned=True),
    TableRules(CLAIM_AGGREGATE_KEYS["procedure_prices"], ("procedure_code", PARTITION_COLUMN), partitioned=True),
    TableRules(
        CLAIM_AGGREGATE_KEYS["coding_pairs"], ("diagnosis_code", "procedure_code", PARTITION_COLUMN), partitioned=True
    ),
    TableRules(MEMBER_RX_DAILY_KEY, ("member_key", "fill_date", PARTITION_COLUMN), partitioned=True),
    # the running state of member_features' window
    TableRules(
        MEMBER_WINDOW_KEY,
        ("member_key",),
        # a running sum below zero subtracted a record it never added
        rules=_amount_rules(
            "num_claims", "num_distinct_providers", "num_rx_fills", "num_immunizations", "total_claim_amount"
        ),
    ),
    TableRules(PSI_METRICS_KEY, (PARTITION_COLUMN, "feature"), partitioned=True),
    TableRules(
        FAIRNESS_MONITORING_KEY, (PARTITION_COLUMN, "model_type", "attribute", "protected_group"), partitioned=True
    ),
    TableRules(MODEL_AUDIT_LOG_KEY, ("model_name", "run_id")),  # one decision per model and run
    TableRules(GATE_SUMMARY_KEY, ("asset", "check_name")),
    *(
        TableRules(
            key,
            ("claim_id",),
            partitioned=True,
            received_not_before="claim_date",
            rules={
                "score_not_negative": "fraud_score >= 0",
                "percentile_in_range": "score_percentile BETWEEN 0 AND 100",
                "p99_flags_are_p95_flags": "NOT is_flagged_p99 OR is_flagged_p95",
            },
        )
        for key in SCORE_KEYS.values()
    ),
    TableRules(DRIFT_SUMMARY_KEY, (PARTITION_COLUMN,), partitioned=True),
    TableRules(
        MEMBER_FEATURES_KEY,
        ("member_key",),
        rules={
            **_amount_rules("total_cost", "num_claims", "num_rx_fills"),
            "age_plausible": "age BETWEEN 0 AND 120",
        },
    ),
]


def _not_materialised() -> dg.AssetCheckResult:
    """A table never written has no row breaking a rule; the freshness checks report the gap."""
    return dg.AssetCheckResult(passed=True, metadata={"table_materialised": False, "rows_checked": 0})


def _scoped_days(context: dg.AssetCheckExecutionContext, table: TableRules) -> list[date] | None:
    """The days a check judges: the run's, for a partitioned table in a partitioned run; else None (every row)."""
    return run_days_if_partitioned(context) if table.partitioned else None


def _scope_text(days: list[date] | None) -> dg.MetadataValue:
    return dg.MetadataValue.text(f"{days[0]}..{days[-1]}" if days else "whole table")


def _key_check(table: TableRules) -> dg.AssetChecksDefinition:
    scope = "the run's days against every partition that can hold their keys" if table.partitioned else "the table"

    @dg.asset_check(
        asset=table.key,
        name="primary_key_unique",
        description=f"{', '.join(table.primary_key)} is never null and never repeats across the whole table "
        f"(judged for {scope}).",
        blocking=True,
        metadata=gate_metadata(blocking=True),
    )
    def _check(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        ref = TableRef.from_path(table.key.path)
        if not lakehouse.storage().exists(ref):
            return _not_materialised()
        stored, days = lakehouse.storage().read(ref), _scoped_days(context, table)
        if days is None:
            counts = quality.key_violations(stored, table.primary_key)
        else:
            counts = quality.key_violations_of_days(
                stored, table.primary_key, days[0], days[-1], table.received_not_before
            )
        return dg.AssetCheckResult(
            passed=counts["null_keys"] == 0 and counts["duplicate_keys"] == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **{name: dg.MetadataValue.int(value) for name, value in counts.items()},
                "rows_judged": _scope_text(days),
            },
        )

    return _check


def _rules_check(table: TableRules, rules: dict[str, str], severity: dg.AssetCheckSeverity) -> dg.AssetChecksDefinition:
    blocking = severity == dg.AssetCheckSeverity.ERROR

    @dg.asset_check(
        asset=table.key,
        name="values_valid" if blocking else "values_expected",
        description="Every row meets: " + "; ".join(f"{n} ({c})" for n, c in rules.items()),
        blocking=blocking,
        metadata=gate_metadata(blocking),
    )
    def _check(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        ref = TableRef.from_path(table.key.path)
        if not lakehouse.storage().exists(ref):
            return _not_materialised()
        days = _scoped_days(context, table)
        rows = lakehouse.storage().read(ref, days[0], days[-1]) if days else lakehouse.storage().read(ref)
        violations = quality.rule_violations(rows, rules)
        return dg.AssetCheckResult(
            passed=not any(violations.values()),
            severity=severity,
            metadata={
                **{f"violations_{name}": dg.MetadataValue.int(value) for name, value in violations.items()},
                "rows_judged": _scope_text(days),
            },
        )

    return _check


def _reconciliation_check(name: str) -> dg.AssetChecksDefinition:
    source = SOURCES[name]

    @dg.asset_check(
        asset=BRONZE_KEYS[name],
        name="landing_reconciles",
        description="For every day of the run: landing data lines = bronze rows + quarantined rows. Nothing is lost.",
        blocking=True,
        additional_deps=[QUARANTINE_KEY],
        metadata=gate_metadata(blocking=True),
    )
    def _check(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        storage = lakehouse.storage()
        days = run_days_if_partitioned(context) or landed_days(lakehouse.landing_root, source)
        per_day = quality.reconcile(
            landed={day: count_landing_lines(lakehouse.landing_root, source, day) for day in days},
            bronze=storage.count_by_day(TableRef("bronze", name), days[0], days[-1]) if days else {},
            quarantined=_quarantined_by_day(storage, name, days),
        )
        lost = sum(abs(d["difference"]) for d in per_day.values())
        return dg.AssetCheckResult(
            passed=lost == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"days": dg.MetadataValue.json(per_day), "unreconciled_lines": dg.MetadataValue.int(lost)},
        )

    return _check


def _freshness_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=BRONZE_KEYS[name],
        name="caught_up_with_landing",
        description="Every day that has landed has been ingested (the newest ingested day is the newest landed day).",
        metadata=gate_metadata(blocking=False),
    )
    def _check(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        landed = landed_days(lakehouse.landing_root, SOURCES[name])
        # partitions recorded by Dagster: a day whose feed was empty still counts as ingested
        ingested = sorted(context.instance.get_materialized_partitions(BRONZE_KEYS[name]))
        newest_landed = landed[-1] if landed else None
        newest_ingested = date.fromisoformat(ingested[-1]) if ingested else None
        behind = (newest_landed - newest_ingested).days if newest_landed and newest_ingested else 0
        behind = len(landed) if newest_ingested is None else max(behind, 0)
        return dg.AssetCheckResult(
            passed=behind == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "newest_landed_day": dg.MetadataValue.text(str(newest_landed)),
                "newest_ingested_day": dg.MetadataValue.text(str(newest_ingested)),
                "days_behind": dg.MetadataValue.int(behind),
            },
        )

    return _check


@dg.asset_check(
    asset=QUARANTINE_KEY,
    name="quarantine_share_low",
    description=f"No feed has more than {MAX_QUARANTINE_SHARE:.0%} of a day's lines quarantined.",
    additional_deps=list(BRONZE_KEYS.values()),
    metadata=gate_metadata(blocking=False),
)
def quarantine_share_low(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    storage = lakehouse.storage()
    days = run_days_if_partitioned(context) or _stored_days(storage, QUARANTINE_KEY_REF)
    if not days:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN, description="no day stored yet")
    quarantined = storage.read(QUARANTINE_KEY_REF, days[0], days[-1]).groupBy("source").count().collect()
    shares, shown = {}, {}
    for row in quarantined:
        kept = storage.count(TableRef("bronze", row["source"]), days[0], days[-1])
        shares[row["source"]] = row["count"] / max(row["count"] + kept, 1)
        shown[row["source"]] = share(row["count"], row["count"] + kept)  # "1.2 % (12 of 1,000)"
    over = sorted(source for source, value in shares.items() if value > MAX_QUARANTINE_SHARE)
    return dg.AssetCheckResult(
        passed=not over,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"over {MAX_QUARANTINE_SHARE:.0%} quarantined: " + "; ".join(f"{s} {shown[s]}" for s in over)
        if over
        else None,
        metadata={"quarantined_share_by_source": dg.MetadataValue.json(shown)},
    )


@dg.asset_check(
    asset=DIM_MEMBERS_KEY,
    name="one_current_record_per_member",
    description="Every member has exactly one current version and no version ends before it starts.",
    blocking=True,
    metadata=gate_metadata(blocking=True),
)
def one_current_record_per_member(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    counts = quality.current_record_violations(lakehouse.storage().read(TableRef.from_path(DIM_MEMBERS_KEY.path)))
    return dg.AssetCheckResult(
        passed=all(value == 0 for name, value in counts.items() if name != "members"),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={name: dg.MetadataValue.int(value) for name, value in counts.items()},
    )


quality_checks = [
    *[_key_check(table) for table in TABLE_RULES],
    *[_rules_check(table, table.rules, dg.AssetCheckSeverity.ERROR) for table in TABLE_RULES if table.rules],
    *[_rules_check(table, table.warnings, dg.AssetCheckSeverity.WARN) for table in TABLE_RULES if table.warnings],
    *[_reconciliation_check(name) for name in SOURCES],
    *[_freshness_check(name) for name in SOURCES],
    quarantine_share_low,
    one_current_record_per_member,
]

# The severity of every check on a bronze table (this module's blocking checks are its ERROR ones): ingestion fails
# them with the days and the reason when it refuses a run's days.
BRONZE_CHECK_SEVERITIES = {
    spec.key: dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN
    for definition in quality_checks
    for spec in definition.check_specs
    if spec.asset_key in {*BRONZE_KEYS.values(), QUARANTINE_KEY}
}
