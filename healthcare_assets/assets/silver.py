"""Silver: typed, deduplicated, pseudonymised tables and the SCD2 member dimension."""

from collections.abc import Callable
from datetime import date, timedelta

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets import catalog
from healthcare_assets.assets.bronze import BRONZE_KEYS
from healthcare_assets.assets.common import DATA_ENGINEERING, SPARK_DELTA, run_day_range, zorder_by
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.gate_status import tagged_day_range
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.privacy import PrivacyResource
from healthcare_assets.transforms import silver

SILVER_KEYS = {name: dg.AssetKey(["silver", name]) for name in SOURCES}
DIM_MEMBERS_KEY = dg.AssetKey(["silver", "dim_members"])
# Metadata of a dim_members materialisation: the last day whose enrolment records the dimension has taken in.
MERGED_THROUGH = "enrolment_days_merged_through"

_TRANSFORMS: dict[str, Callable[[DataFrame, bytes], DataFrame]] = {
    "medical_claims": silver.medical_claims,
    "pharmacy_claims": silver.pharmacy_claims,
    "member_eligibility": silver.member_eligibility,
    "immunizations": silver.immunizations,
}

# What the weekly Delta maintenance Z-orders each table by: reads select a member's rows over a date range.
_ZORDER_BY = {
    "medical_claims": ("member_key", "service_start_date"),
    "pharmacy_claims": ("member_key", "fill_date"),
    "member_eligibility": ("member_key",),
    "immunizations": ("member_key", "administered_date"),
}


def _first_deliveries(frame: DataFrame, lakehouse: LakehouseResource, name: str, start: date) -> DataFrame:
    storage = lakehouse.storage()
    ref = TableRef.from_path(SILVER_KEYS[name].path)
    if not storage.exists(ref):
        return frame
    return silver.drop_earlier_deliveries(frame, storage.read(ref), SOURCES[name], start)


def _pseudonym_lineage(bronze_key: dg.AssetKey) -> dict[str, list[catalog.ColumnSource]]:
    """Where silver's de-identified columns come from (every other column keeps its bronze name)."""
    return {
        "member_key": [(bronze_key, "member_id")],
        "birth_year": [(bronze_key, "date_of_birth"), (bronze_key, PARTITION_COLUMN)],
        "address_key": [(bronze_key, column) for column in ("street_address", "city", "zip_code")],
    }


def _silver_asset(name: str) -> dg.AssetsDefinition:
    source = SOURCES[name]

    @dg.asset(
        key=SILVER_KEYS[name],
        ins={"bronze_table": dg.AssetIn(BRONZE_KEYS[name])},
        description=f"{source.description} Typed, deduplicated on {', '.join(source.key)}, member id replaced "
        "by its keyed pseudonym (member_key), direct identifiers removed.",
        group_name="silver",
        kinds=SPARK_DELTA,
        owners=DATA_ENGINEERING,
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        metadata=zorder_by(*_ZORDER_BY[name]),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        bronze_table: DataFrame,
        lakehouse: LakehouseResource,
        privacy: PrivacyResource,
    ) -> DataFrame:
        start, _ = run_day_range(context)
        cleaned = _TRANSFORMS[name](bronze_table, privacy.key())
        context.add_output_metadata(
            catalog.column_lineage(
                cleaned.columns, {BRONZE_KEYS[name]: bronze_table.columns}, _pseudonym_lineage(BRONZE_KEYS[name])
            )
        )
        return _first_deliveries(cleaned, lakehouse, name, start)

    return _asset


silver_tables = [_silver_asset(name) for name in SOURCES]

_ELIGIBILITY = SILVER_KEYS["member_eligibility"]
# a version's span and number follow from the enrolment records' maintenance type and dates
_SPAN = [(_ELIGIBILITY, column) for column in ("maintenance_type", "eligibility_start_date", "eligibility_end_date")]
DIM_MEMBERS_LINEAGE = catalog.column_lineage(
    silver.DIM_MEMBERS_COLUMNS,
    passthrough={_ELIGIBILITY: ("member_key", *silver.TRACKED_ATTRIBUTES)},
    derived={
        "enrollment_status": [(_ELIGIBILITY, "maintenance_type")],
        **{column: _SPAN for column in ("version", "effective_from", "effective_to", "is_current_record")},
        "attributes_hash": [
            (_ELIGIBILITY, "maintenance_type" if attribute == "enrollment_status" else attribute)
            for attribute in silver.TRACKED_ATTRIBUTES
        ],
    },
)


def _merged_through(context: dg.AssetExecutionContext) -> date | None:
    """The last day whose enrolment records the stored dimension has taken in (None: not recorded)."""
    event = context.instance.get_latest_materialization_event(DIM_MEMBERS_KEY)
    if event is None or event.asset_materialization is None:
        return None
    entry = event.asset_materialization.metadata.get(MERGED_THROUGH)
    return None if entry is None else date.fromisoformat(str(entry.value))


@dg.asset(
    key=DIM_MEMBERS_KEY,
    ins={"eligibility": dg.AssetIn(SILVER_KEYS["member_eligibility"])},
    description="Members as a slowly changing dimension (type 2): one row per version with effective_from, "
    "effective_to and is_current_record; pseudonymised (member_key, birth year, address key).",
    group_name="silver",
    kinds=SPARK_DELTA,
    owners=DATA_ENGINEERING,
    backfill_policy=single_run_backfill,
    metadata=zorder_by("member_key"),
)
def dim_members(
    context: dg.AssetExecutionContext, eligibility: DataFrame, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Derives the member history and MERGEs it into the dimension: in a run of some days, only for the members
    whose enrolment records arrived on those days or on a day the dimension has not taken in yet (a day whose
    dimension step failed is caught up); otherwise, or when that day is not recorded, for every member."""
    storage = lakehouse.storage()
    ref = TableRef.from_path(DIM_MEMBERS_KEY.path)
    days = tagged_day_range(context.run.tags)
    merged = _merged_through(context) if storage.exists(ref) else None
    if days is None or merged is None:
        storage.merge(ref, silver.dim_members(eligibility), silver.DIM_MEMBERS_MERGE)
        merged_through = eligibility.agg(F.max(PARTITION_COLUMN)).collect()[0][0]
    else:
        start = min(days[0], merged + timedelta(days=1))
        touched = silver.touched_members(eligibility, start, days[1]).localCheckpoint()
        changes = silver.dim_members_changes(eligibility, storage.read(ref), touched)
        storage.merge(ref, changes, silver.DIM_MEMBERS_TOUCHED_MERGE)
        context.log.info(f"dim_members: merged the {touched.count()} member(s) with records of {start}..{days[1]}")
        merged_through = max(days[1], merged)
    current = storage.read(ref).where("is_current_record").count()
    return dg.MaterializeResult(
        metadata={
            **lakehouse.table_metadata(ref),
            **DIM_MEMBERS_LINEAGE,
            "current_members": dg.MetadataValue.int(current),
            **({MERGED_THROUGH: dg.MetadataValue.text(merged_through.isoformat())} if merged_through else {}),
        }
    )
