"""Small helpers shared by the asset modules."""

from datetime import date, timedelta

import dagster as dg

SPARK_DELTA = {"spark", "delta"}
DATA_ENGINEERING = ["team:data-engineering"]


def run_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The days of the partitions the run targets (one for a daily run, many for a backfill range)."""
    keys = context.partition_key_range  # daily partition keys are yyyy-mm-dd
    start, end = date.fromisoformat(keys.start), date.fromisoformat(keys.end)
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def run_days_if_partitioned(context: dg.AssetCheckExecutionContext) -> list[date] | None:
    """The run's days, or None when a check runs outside a partitioned run (then it covers every day)."""
    if context.has_partition_key or context.has_partition_key_range:
        return run_days(context)
    return None


def run_day_range(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[date, date]:
    days = run_days(context)
    return days[0], days[-1]


def day_range_text(start: date, end: date) -> str:
    """ "2026-01-03" for one day, "2026-01-01..2026-01-14" for a range."""
    return start.isoformat() if start == end else f"{start.isoformat()}..{end.isoformat()}"


def latest_metadata_value(context: dg.AssetExecutionContext, key: dg.AssetKey, name: str):
    """A metadata value of `key`'s latest materialisation (e.g. the MLflow model URI a model asset logged)."""
    event = context.instance.get_latest_materialization_event(key)
    if event is None or name not in event.asset_materialization.metadata:
        raise dg.Failure(f"{key.to_user_string()} has no materialisation with {name!r}: materialise it first")
    return event.asset_materialization.metadata[name].value


# Definition metadata naming the columns the weekly Delta maintenance Z-orders a table by.
ZORDER_BY_METADATA = "delta/zorder_by"


def zorder_by(*columns: str) -> dict[str, str]:
    """Declares a table's Z-order columns next to the table (read by the `delta_maintenance` job)."""
    return {ZORDER_BY_METADATA: ", ".join(columns)}
