"""Bronze: every landing line either as received (with ingest metadata) or quarantined with its reason."""

from datetime import date

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.common import DATA_ENGINEERING, SPARK_DELTA, day_range_text, run_days
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
        raise _refuse_ingestion(context, days, rejected) from None
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


class IngestionRefused(dg.Failure):
    """The step's failure when a landing file is rejected. The full rejection is its description, logged once
    and on every bronze check of the run; its own text, which Dagster prints with the framework's stack trace on
    the step and again on the run, is one line pointing there instead of repeating it."""

    def __init__(self, days: str, rejected: LandingFileRejected):
        super().__init__(
            description=str(rejected),
            metadata={
                "feed": rejected.feed,
                "day": rejected.day.isoformat(),
                "file": rejected.file_name,
                "problem": rejected.problem,
            },
            allow_retries=False,  # the same file fails the same way until it is redelivered
        )
        self.args = (
            f"{days} not ingested: {rejected.feed} landing file {rejected.file_name} was rejected "
            "(the reason is in the log line above and on the bronze checks of this run)",
        )


def _refuse_ingestion(
    context: dg.AssetExecutionContext, days: list[date], rejected: LandingFileRejected
) -> IngestionRefused:
    """Says once why nothing was ingested, and fails every bronze check planned in this run with the day and the
    reason: otherwise they would show only that their run failed."""
    from healthcare_assets.checks.quality import BRONZE_CHECK_SEVERITIES  # the checks import this module

    span = day_range_text(days[0], days[-1])
    context.log.error(str(rejected))
    planned = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
    ).records
    for record in planned:
        event = record.event_log_entry.dagster_event
        plan = event.event_specific_data if event is not None else None
        key = dg.AssetCheckKey(plan.asset_key, plan.check_name) if plan is not None else None
        if key not in BRONZE_CHECK_SEVERITIES:
            continue
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                severity=BRONZE_CHECK_SEVERITIES[key],
                description=f"{span} not ingested: {rejected}",
                metadata={"days": span, "rejected_feed": rejected.feed, "rejected_file": rejected.file_name},
            )
        )
    return IngestionRefused(span, rejected)
