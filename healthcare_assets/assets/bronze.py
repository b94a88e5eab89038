"""Bronze: every landing line either as received (with ingest metadata) or quarantined with its reason."""

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.common import DATA_ENGINEERING, SPARK_DELTA, run_days
from healthcare_assets.assets.landing import LANDING_KEYS
from healthcare_assets.charts import bar_chart_markdown
from healthcare_assets.domain.landing import REASON, LandingFileRejected
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.transforms import bronze

QUARANTINE_KEY = dg.AssetKey(["bronze", "quarantine"])
BRONZE_KEYS = {name: dg.AssetKey(["bronze", name]) for name in SOURCES}

_OUTS = {
    **{
        name: dg.AssetOut(
            key=BRONZE_KEYS[name],
            description=f"{source.description} As received (strings) plus file, line and ingest time; "
            "valid rows only (the rest are in bronze.quarantine).",
            kinds=SPARK_DELTA,
            owners=DATA_ENGINEERING,
            tags={"phi": "true"},
            group_name="bronze",
        )
        for name, source in SOURCES.items()
    },
    "quarantine": dg.AssetOut(
        key=QUARANTINE_KEY,
        description="Landing lines that could not be parsed or broke a rule: source, day, file, line, raw record, reason.",
        kinds=SPARK_DELTA,
        owners=DATA_ENGINEERING,
        tags={"phi": "true"},
        group_name="bronze",
    ),
}


@dg.multi_asset(
    name="bronze_ingestion",
    outs=_OUTS,
    deps=list(LANDING_KEYS.values()),
    # each bronze table comes from its own feed; the quarantine from all of them
    internal_asset_deps={
        **{name: {LANDING_KEYS[name]} for name in SOURCES},
        "quarantine": set(LANDING_KEYS.values()),
    },
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def bronze_ingestion(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """Parses each feed's files of the run's days once and splits valid rows from quarantined ones."""
    spark = lakehouse.spark.get_session()
    days = run_days(context)
    try:
        # every feed's files first: a rejected file must stop the run before any table is written
        checked = sum(bronze.check_landing_files(lakehouse.landing_root, source, days) for source in SOURCES.values())
    except LandingFileRejected as rejected:
        raise dg.Failure(
            description=str(rejected),
            metadata={"feed": rejected.feed, "day": rejected.day.isoformat(), "file": rejected.file_name},
        ) from None
    context.log.info(f"{checked} landing file(s) of {len(days)} day(s) passed the file-level checks")
    quarantined = []
    quarantine_summary: dict[str, dict[str, int]] = {}
    for name, source in SOURCES.items():
        # parsed once, then written to two tables
        parsed = bronze.parse_landing(spark, lakehouse.landing_root, source, days).localCheckpoint()
        kinds = (
            parsed.where(F.col(REASON).isNotNull())
            .groupBy(F.substring_index(REASON, ":", 1).alias("kind"))
            .count()
            .collect()
        )
        quarantine_summary[name] = {row["kind"]: row["count"] for row in kinds}
        context.log.info(
            f"{name}: parsed {len(days)} day(s), {sum(quarantine_summary[name].values())} line(s) quarantined"
        )
        quarantined.append(bronze.quarantine_rows(parsed, source))
        yield dg.Output(
            bronze.bronze_rows(parsed, source),
            output_name=name,
            metadata={
                "quarantined_lines": dg.MetadataValue.int(sum(quarantine_summary[name].values())),
                "quarantined_by_kind": dg.MetadataValue.json(quarantine_summary[name]),
            },
        )
    all_quarantined = quarantined[0]
    for frame in quarantined[1:]:
        all_quarantined = all_quarantined.unionByName(frame)
    yield dg.Output(
        all_quarantined,
        output_name="quarantine",
        metadata={
            "quarantined_by_source": dg.MetadataValue.json(quarantine_summary),
            # kinds of failure only (rule names), never the records: the chart shows no PHI
            "quarantined_chart": bar_chart_markdown(quarantine_summary, "Quarantined lines by feed and kind", "lines"),
        },
    )
