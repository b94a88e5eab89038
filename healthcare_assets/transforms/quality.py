"""Data-quality measurements over DataFrames; the asset checks turn them into pass/fail."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms.common import earliest, received_from


def key_violations(frame: DataFrame, key: tuple[str, ...]) -> dict[str, int]:
    """Rows whose key has a null part, and key values that occur more than once."""
    null_key = (
        F.greatest(*[F.col(k).isNull().cast("int") for k in key])
        if len(key) > 1
        else F.col(key[0]).isNull().cast("int")
    )
    totals = frame.agg(F.count(F.lit(1)).alias("rows"), F.sum(null_key).alias("null_keys")).collect()[0]
    duplicates = frame.where(~null_key.cast("boolean")).groupBy(*key).count().where("count > 1").count()
    return {"rows": int(totals["rows"]), "null_keys": int(totals["null_keys"] or 0), "duplicate_keys": int(duplicates)}


def key_violations_of_days(
    table: DataFrame, key: tuple[str, ...], start: date, end: date, received_not_before: str | None
) -> dict[str, int]:
    """key_violations for the rows of days start..end, their keys' uniqueness judged against the whole table
    while reading only the partitions that can hold them.

    A key with the day in it is unique across the table when it is unique within each day. Otherwise a record
    is received no earlier than its `received_not_before` date, so another row with one of the days' keys (an
    earlier or a later delivery of the same record) sits in a partition no older than the oldest such date of
    the days' rows; without that column every partition can.
    """
    days = table.where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))
    if PARTITION_COLUMN in key:
        return key_violations(days, key)
    counts = key_violations(days, key)
    candidates = table
    if received_not_before is not None:
        oldest = earliest(days, received_not_before)
        if oldest is None:
            return counts
        candidates = received_from(table, oldest)
    with_days_keys = candidates.join(days.select(*key).distinct(), list(key), "left_semi")
    return {**counts, "duplicate_keys": with_days_keys.groupBy(*key).count().where("count > 1").count()}


def rule_violations(frame: DataFrame, rules: Mapping[str, str]) -> dict[str, int]:
    """For each named rule (a SQL condition every row must meet), the number of rows breaking it.

    A null result counts as a violation: a rule about a column holds only where it is known.
    """
    if not rules:
        return {}
    counts = frame.agg(
        *[F.sum(F.when(F.expr(condition), 0).otherwise(1)).alias(name) for name, condition in rules.items()]
    ).collect()[0]
    return {name: int(counts[name] or 0) for name in rules}


def current_record_violations(dimension: DataFrame) -> dict[str, int]:
    """SCD2 integrity: exactly one current version per member, and versions that do not overlap."""
    per_member = dimension.groupBy("member_key").agg(F.sum(F.col("is_current_record").cast("int")).alias("current"))
    not_one_current = per_member.where("current <> 1").count()
    overlapping = dimension.where(
        F.col("effective_to").isNotNull() & (F.col("effective_to") < F.col("effective_from"))
    ).count()
    open_but_not_current = dimension.where(F.col("effective_to").isNull() & ~F.col("is_current_record")).count()
    return {
        "members": per_member.count(),
        "members_without_exactly_one_current_record": not_one_current,
        "versions_ending_before_they_start": overlapping,
        "open_versions_not_marked_current": open_but_not_current,
    }


def reconcile(landed: Mapping[date, int], bronze: Mapping[date, int], quarantined: Mapping[date, int]) -> dict:
    """Per day: landing lines against bronze rows plus quarantined rows; `difference` 0 means nothing lost."""
    return {
        day.isoformat(): {
            "landing": lines,
            "bronze": bronze.get(day, 0),
            "quarantine": quarantined.get(day, 0),
            "difference": lines - bronze.get(day, 0) - quarantined.get(day, 0),
        }
        for day, lines in sorted(landed.items())
    }
