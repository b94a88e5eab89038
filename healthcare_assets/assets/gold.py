"""Gold: the feature tables the fraud and risk models train and score on."""

from datetime import date

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets import catalog
from healthcare_assets.assets.common import SPARK_DELTA, zorder_by
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, SILVER_KEYS
from healthcare_assets.domain.features import CHRONIC_CONDITIONS
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.transforms import gold

CLAIM_FEATURES_KEY = dg.AssetKey(["gold", "claim_features"])
MEMBER_FEATURES_KEY = dg.AssetKey(["gold", "member_features"])
# Daily aggregates of the received claims: the window features sum these instead of re-reading the claims.
CLAIM_AGGREGATE_KEYS = {
    "member_lines": dg.AssetKey(["gold", "member_claims_daily"]),
    "procedure_prices": dg.AssetKey(["gold", "procedure_prices_daily"]),
    "coding_pairs": dg.AssetKey(["gold", "coding_pairs_daily"]),
}
MEMBER_RX_DAILY_KEY = dg.AssetKey(["gold", "member_rx_daily"])
ML_OWNERS = ["team:data-engineering", "team:fraud-ml"]

# Column lineage of the feature tables: columns not listed keep their upstream name.
_CLAIMS, _RX, _SHOTS = (SILVER_KEYS[name] for name in ("medical_claims", "pharmacy_claims", "immunizations"))
_AGE = [(DIM_MEMBERS_KEY, "birth_year"), (_CLAIMS, "service_start_date")]
CLAIM_FEATURE_SOURCES = {
    "claim_date": [(_CLAIMS, "service_start_date")],
    "patient_age": _AGE,
    "patient_age_group": _AGE,
    "patient_gender": [(DIM_MEMBERS_KEY, "gender")],
    "days_since_last_claim": [(_CLAIMS, "member_key"), (_CLAIMS, "service_start_date")],
    "claim_rate_30d": [(_CLAIMS, "member_key"), (_CLAIMS, "claim_id"), (_CLAIMS, PARTITION_COLUMN)],
    "claim_rate_90d": [(_CLAIMS, "member_key"), (_CLAIMS, "claim_id"), (_CLAIMS, PARTITION_COLUMN)],
    "amount_to_member_mean": [(_CLAIMS, "member_key"), (_CLAIMS, "claim_amount")],
    "history_days": [(_CLAIMS, PARTITION_COLUMN)],
    "claim_duration_days": [(_CLAIMS, "service_start_date"), (_CLAIMS, "service_end_date")],
    "identical_claims_before": [
        (_CLAIMS, column) for column in ("member_key", "provider_id", "procedure_code", "service_start_date")
    ],
    "lines_same_visit": [(_CLAIMS, column) for column in ("member_key", "provider_id", "service_start_date")],
    "amount_to_procedure_typical": [(_CLAIMS, "procedure_code"), (_CLAIMS, "claim_amount")],
    "procedure_share_for_diagnosis": [(_CLAIMS, "diagnosis_code"), (_CLAIMS, "procedure_code")],
}
_DEMOGRAPHICS = ("member_key", "gender", "geographic_region", "plan_code", "enrollment_status", "bmi")
_CLAIM_COUNTS = ("num_claims", "num_er_visits", "num_inpatient_stays", "num_outpatient_visits")
MEMBER_FEATURE_SOURCES = {
    "as_of_date": [(_CLAIMS, PARTITION_COLUMN)],
    "age": [(DIM_MEMBERS_KEY, "birth_year"), (_CLAIMS, PARTITION_COLUMN)],
    "age_group": [(DIM_MEMBERS_KEY, "birth_year"), (_CLAIMS, PARTITION_COLUMN)],
    "is_smoker": [(DIM_MEMBERS_KEY, "smoker")],
    **{name: [(_CLAIMS, "claim_id"), (_CLAIMS, "claim_type")] for name in _CLAIM_COUNTS},
    "num_distinct_providers": [(_CLAIMS, "provider_id")],
    "total_claim_amount": [(_CLAIMS, "claim_amount")],
    "total_paid_amount": [(_CLAIMS, "paid_amount")],
    "num_rx_fills": [(_RX, "rx_claim_id")],
    "total_rx_amount": [(_RX, "rx_amount")],
    "total_cost": [(_CLAIMS, "paid_amount"), (_RX, "rx_amount")],
    "num_immunizations": [(_SHOTS, "immunization_id")],
    "last_flu_vaccine_date": [(_SHOTS, "vaccine_code"), (_SHOTS, "administered_date")],
    "vaccines_received": [(_SHOTS, "vaccine_code")],
    "chronic_condition_count": [(_CLAIMS, "diagnosis_code"), (_RX, "drug_class")],
    **{
        f"has_{name}": [(_CLAIMS, "diagnosis_code"), *([(_RX, "drug_class")] if drug_class else [])]
        for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
    },
}


_AGGREGATE_DESCRIPTIONS = {
    "member_lines": "Per member visit line (member, provider, service day, procedure) and received day: claims by "
    "type, billed and paid amounts, chronic-condition diagnosis flags.",
    "procedure_prices": "Per procedure and received day: claims and the sum of their log amounts.",
    "coding_pairs": "Per diagnosis-procedure pair and received day: claims.",
}


@dg.multi_asset(
    name="claim_daily_aggregates",
    outs={
        name: dg.AssetOut(
            key=key,
            description=_AGGREGATE_DESCRIPTIONS[name],
            group_name="gold",
            kinds=SPARK_DELTA,
            owners=ML_OWNERS,
        )
        for name, key in CLAIM_AGGREGATE_KEYS.items()
    },
    ins={"claims": dg.AssetIn(_CLAIMS)},
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def claim_daily_aggregates(claims: DataFrame):
    """The run's days of claims, aggregated once: written for those days only."""
    aggregates = gold.ClaimAggregates.of(claims)
    return aggregates.member_lines, aggregates.procedure_prices, aggregates.coding_pairs


@dg.asset(
    key=MEMBER_RX_DAILY_KEY,
    ins={"pharmacy_claims": dg.AssetIn(_RX)},
    description="Per member, fill day and received day: fills, amount and maintenance-drug flags.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=["team:data-engineering", "team:risk-ml"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def member_rx_daily(pharmacy_claims: DataFrame) -> DataFrame:
    return gold.member_rx_daily(pharmacy_claims)


_FEATURE_WINDOW = dg.TimeWindowPartitionMapping(
    start_offset=-gold.CLAIM_FEATURE_WINDOW_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
)


@dg.asset(
    key=CLAIM_FEATURES_KEY,
    ins={
        "claims": dg.AssetIn(_CLAIMS),
        **{name: dg.AssetIn(key, partition_mapping=_FEATURE_WINDOW) for name, key in CLAIM_AGGREGATE_KEYS.items()},
        "members": dg.AssetIn(DIM_MEMBERS_KEY),
    },
    description="Claim-level features of the fraud autoencoder (amount, patient age, provider experience, "
    "member claim history, duration, codes, protected attributes), one row per claim received that day.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=ML_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    metadata=zorder_by("member_key", "claim_date"),
)
def claim_features(
    context: dg.AssetExecutionContext,
    claims: DataFrame,
    member_lines: DataFrame,
    procedure_prices: DataFrame,
    coding_pairs: DataFrame,
    members: DataFrame,
) -> DataFrame:
    aggregates = gold.ClaimAggregates(member_lines, procedure_prices, coding_pairs)
    features = gold.claim_features_from_aggregates(claims, aggregates, members)
    upstream = {_CLAIMS: claims.columns, DIM_MEMBERS_KEY: members.columns}
    context.add_output_metadata(catalog.column_lineage(features.columns, upstream, CLAIM_FEATURE_SOURCES))
    return features


MEMBER_WINDOW_KEY = dg.AssetKey(["gold", "member_window"])
_WINDOW_SOURCES = (CLAIM_AGGREGATE_KEYS["member_lines"], MEMBER_RX_DAILY_KEY, _SHOTS)
# Metadata of a member-window materialisation: the day the stored window ends on, and how it was made.
WINDOW_AS_OF = "window_as_of"
WINDOW_UPDATE = "window_update"


def _stored_window_end(context: dg.AssetExecutionContext, stored: DataFrame) -> tuple[date, float] | None:
    """The day the stored member window ends on (its own column: another instance or engine may have written it)
    and when this instance last wrote it; None when either is unknown."""
    event = context.instance.get_latest_materialization_event(MEMBER_WINDOW_KEY)
    as_of = stored.agg(F.max("as_of_date")).collect()[0][0]
    return None if event is None or as_of is None else (as_of, event.timestamp)


def _rewritten_days(instance: dg.DagsterInstance, through: date, since: float) -> list[str]:
    """Days up to `through` of the window's sources materialised again after `since` (a re-delivery, a fix)."""
    days: set[str] = set()
    for key in _WINDOW_SOURCES:
        after = dg.AssetRecordsFilter(asset_key=key, after_timestamp=since)
        for record in instance.fetch_materializations(after, limit=10_000).records:
            if record.partition_key and date.fromisoformat(record.partition_key) <= through:
                days.add(record.partition_key)
    return sorted(days)


def _rebuild_reason(instance: dg.DagsterInstance, stored: tuple[date, float] | None, as_of: date) -> str | None:
    """Why the stored window cannot be advanced to `as_of` (None: it can)."""
    if stored is None:
        return "no stored window of this instance"
    rewritten = _rewritten_days(instance, *stored)
    if rewritten:
        return f"{len(rewritten)} day(s) it holds rewritten"
    return "claims days removed" if as_of < stored[0] else None


@dg.asset(
    key=MEMBER_WINDOW_KEY,
    deps=_WINDOW_SOURCES,
    description="Running state of member_features' 12-month window, one row per member: the window's claim and "
    "pharmacy sums and distinct providers, the last day of each chronic-condition diagnosis and maintenance drug, "
    "immunization history; advanced by the days received since it was written.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=["team:data-engineering", "team:risk-ml"],
    backfill_policy=single_run_backfill,
)
def member_window(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    """Advances the stored window by the days received since it was written: adds their records, subtracts the
    records whose day left the window. Rebuilt from every record when there is no stored window, or a day it
    already holds was materialised again since."""
    storage = lakehouse.storage()
    ref = TableRef.from_path(MEMBER_WINDOW_KEY.path)
    records = gold.WindowRecords(*(storage.read(TableRef.from_path(key.path)) for key in _WINDOW_SOURCES))
    as_of = records.claim_lines.agg(F.max(PARTITION_COLUMN)).collect()[0][0]
    if as_of is None:
        raise dg.Failure("silver.medical_claims is empty: materialise at least one day of claims first")
    stored_table = storage.read(ref) if storage.exists(ref) else None
    stored = None if stored_table is None else _stored_window_end(context, stored_table)
    reason = _rebuild_reason(context.instance, stored, as_of)
    if stored_table is None or stored is None or reason is not None:
        window = gold.advance_member_window(None, records, None, as_of)
        update = f"rebuilt from every record ({reason})"
    else:
        window = gold.advance_member_window(stored_table, records, stored[0], as_of)
        update = f"advanced from {stored[0]} to {as_of}"
    context.log.info(f"member window ending {as_of}: {update}")
    window = window.localCheckpoint()  # it is read from the table it replaces
    storage.overwrite(window, ref)
    return dg.MaterializeResult(
        metadata={
            **lakehouse.written_metadata(ref, window, None, None),
            WINDOW_AS_OF: dg.MetadataValue.text(as_of.isoformat()),
            WINDOW_UPDATE: dg.MetadataValue.text(update),
        }
    )


@dg.asset(
    key=MEMBER_FEATURES_KEY,
    ins={"members": dg.AssetIn(DIM_MEMBERS_KEY), "window": dg.AssetIn(MEMBER_WINDOW_KEY)},
    description="One row per current member: demographics, BMI and smoking, 12-month utilisation and cost, "
    "chronic-condition flags, immunization history; as of the latest claim received.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=["team:data-engineering", "team:risk-ml"],
    backfill_policy=single_run_backfill,
)
def member_features(context: dg.AssetExecutionContext, members: DataFrame, window: DataFrame) -> DataFrame:
    as_of = window.agg(F.max("as_of_date")).collect()[0][0]
    if as_of is None:
        raise dg.Failure("gold.member_window is empty: materialise it first")
    features = gold.member_features_from_window(members, window, as_of)
    lineage = catalog.column_lineage(features.columns, {DIM_MEMBERS_KEY: _DEMOGRAPHICS}, MEMBER_FEATURE_SOURCES)
    context.add_output_metadata(lineage)
    return features
