"""Column helpers shared by the silver and gold transforms."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from healthcare_assets.domain.privacy import hmac_pads
from healthcare_assets.domain.sources import DATE, DOUBLE, INT, MONEY, Source
from healthcare_assets.resources.delta import PARTITION_COLUMN


def pseudonymise(column: Column | str, key: bytes) -> Column:
    """HMAC-SHA256 of the column's UTF-8 text, hex encoded; equals domain.privacy.pseudonymise."""
    pads = hmac_pads(key)
    value = F.col(column) if isinstance(column, str) else column
    inner = F.unhex(F.sha2(F.concat(F.unhex(F.lit(pads.inner_hex)), value.cast("binary")), 256))
    return F.sha2(F.concat(F.unhex(F.lit(pads.outer_hex)), inner), 256)


_SPARK_TYPES = {INT: "int", DOUBLE: "double", MONEY: "decimal(12,2)", DATE: "date"}


def typed(frame: DataFrame, source: Source) -> DataFrame:
    """Casts the as-received string columns to their contract types (bronze rows already passed validation)."""
    return frame.select(
        *[
            F.col(c.name).cast(_SPARK_TYPES[c.dtype]).alias(c.name) if c.dtype in _SPARK_TYPES else F.col(c.name)
            for c in source.columns
        ],
        *[name for name in frame.columns if name not in source.column_names],
    )


def age_group(age: Column) -> Column:
    """The protected age groups used for fairness and outreach; null when the age is unknown (a claim of a member
    missing from the roster is in no age group, not in the oldest)."""
    return (
        F.when(age < 18, "0-17")
        .when(age < 35, "18-34")
        .when(age < 50, "35-49")
        .when(age < 65, "50-64")
        .when(age >= 65, "65+")
    )


def earliest(frame: DataFrame, column: str) -> date | None:
    """The earliest value of a date column of the rows (None: no rows). With a column bronze guarantees is not
    after the day a record was received (a service, fill or administration date), every record sharing that date
    with one of the rows sits in a partition from that day on: `received_from` reads only those."""
    return frame.agg(F.min(column)).collect()[0][0]


def received_from(table: DataFrame, day: date | None) -> DataFrame:
    """The table's partitions from `day` on (Delta skips the files of the earlier ones); all of them for None."""
    return table if day is None else table.where(F.col(PARTITION_COLUMN) >= F.lit(day))
