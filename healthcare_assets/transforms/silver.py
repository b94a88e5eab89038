"""Bronze -> silver: typed, deduplicated, pseudonymised; members as an SCD type 2 dimension."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from healthcare_assets.domain.landing import LINE_NUMBER, SOURCE_FILE
from healthcare_assets.domain.sources import (
    IMMUNIZATIONS,
    MEDICAL_CLAIMS,
    MEMBER_ELIGIBILITY,
    PHARMACY_CLAIMS,
    Source,
)
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms.common import earliest, pseudonymise, received_from, typed

# Safe-harbour de-identification keeps the birth year only, and folds ages over 89 together.
MAX_REPORTED_AGE = 90


def _deduplicate(frame: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """Keeps the first delivery of each key (earliest file, then line)."""
    first = Window.partitionBy(*key).orderBy(SOURCE_FILE, LINE_NUMBER)
    return frame.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank")


def silver_key(source: Source) -> tuple[str, ...]:
    """The natural key of a silver table: the source key with the member id pseudonymised."""
    return tuple("member_key" if name == "member_id" else name for name in source.key)


def received_not_before(source: Source) -> str | None:
    """A date column silver keeps that bronze guarantees is not after the day a record was received."""
    kept = [name for name in source.not_after_receipt if name not in source.phi_columns]
    return kept[0] if kept else None


def drop_earlier_deliveries(frame: DataFrame, stored: DataFrame, source: Source, start: date) -> DataFrame:
    """Drops records already stored for a day before `start`: a re-delivered record counts once.

    A record was received no earlier than its own service (fill, administration) date, so an earlier delivery
    of the day's records sits in a partition no older than their oldest such date: only those partitions are
    read, and the cost does not grow with the history. (A re-delivery that moved the date past the first
    delivery's day escapes this and is caught by the primary-key gate.)
    """
    key = list(silver_key(source))
    earlier = stored.where(F.col(PARTITION_COLUMN) < F.lit(start))
    bound = received_not_before(source)
    if bound is not None:
        oldest = earliest(frame, bound)
        if oldest is None:
            return frame
        earlier = received_from(earlier, oldest)
    return frame.join(earlier.select(*key), key, "left_anti")


def _clean(bronze: DataFrame, source: Source, key: bytes) -> DataFrame:
    """Typed, deduplicated on the natural key, member id replaced by its keyed pseudonym, PHI dropped."""
    frame = _deduplicate(typed(bronze, source), source.key)
    frame = frame.withColumn("member_key", pseudonymise("member_id", key))
    return frame.drop(*source.phi_columns, "_ingested_at")


def _ordered(frame: DataFrame, leading: list[str]) -> DataFrame:
    rest = [c for c in frame.columns if c not in leading and c not in (SOURCE_FILE, LINE_NUMBER, PARTITION_COLUMN)]
    return frame.select(*leading, *rest, SOURCE_FILE, LINE_NUMBER, PARTITION_COLUMN)


def medical_claims(bronze: DataFrame, key: bytes) -> DataFrame:
    return _ordered(_clean(bronze, MEDICAL_CLAIMS, key), ["claim_id", "member_key"])


def pharmacy_claims(bronze: DataFrame, key: bytes) -> DataFrame:
    return _ordered(_clean(bronze, PHARMACY_CLAIMS, key), ["rx_claim_id", "member_key"])


def immunizations(bronze: DataFrame, key: bytes) -> DataFrame:
    return _ordered(_clean(bronze, IMMUNIZATIONS, key), ["immunization_id", "member_key"])


def member_eligibility(bronze: DataFrame, key: bytes) -> DataFrame:
    """Enrolment records without direct identifiers: birth year instead of birth date, an address pseudonym."""
    frame = typed(bronze, MEMBER_ELIGIBILITY)
    frame = _deduplicate(frame, MEMBER_ELIGIBILITY.key)
    frame = frame.withColumn(
        "birth_year",
        F.greatest(F.year("date_of_birth"), F.year(PARTITION_COLUMN) - F.lit(MAX_REPORTED_AGE)),
    )
    address = F.concat_ws("|", "street_address", "city", "zip_code")
    frame = frame.withColumn("member_key", pseudonymise("member_id", key)).withColumn(
        "address_key", pseudonymise(address, key)
    )
    frame = frame.drop(*MEMBER_ELIGIBILITY.phi_columns, "_ingested_at")
    return _ordered(frame, ["member_key", "maintenance_type", "eligibility_start_date"])


# Attributes whose change opens a new version of a member.
TRACKED_ATTRIBUTES = (
    "gender",
    "birth_year",
    "geographic_region",
    "plan_code",
    "address_key",
    "bmi",
    "smoker",
    "enrollment_status",
)
DIM_MEMBERS_COLUMNS = (
    "member_key",
    "version",
    *TRACKED_ATTRIBUTES,
    "effective_from",
    "effective_to",
    "is_current_record",
    "attributes_hash",
)


def dim_members(eligibility: DataFrame) -> DataFrame:
    """SCD type 2 history of members, derived from every enrolment record received so far.

    A record takes effect on its eligibility start date (ADD/CHANGE) or its end
    date (TERM). Consecutive records with identical tracked attributes collapse
    into one version; each version is valid from `effective_from` to the day
    before the next version (`effective_to` null while current). Deriving the
    whole history makes the dimension a pure function of its input: late and
    re-delivered records land in the right place and reruns change nothing.
    """
    records = eligibility.withColumn(
        "enrollment_status", F.when(F.col("maintenance_type") == "TERM", "terminated").otherwise("active")
    ).withColumn(
        "effective_from",
        F.when(F.col("maintenance_type") == "TERM", F.col("eligibility_end_date")).otherwise(
            F.col("eligibility_start_date")
        ),
    )
    # one record per member and day: the last received wins
    latest_of_day = Window.partitionBy("member_key", "effective_from").orderBy(
        F.col(PARTITION_COLUMN).desc(), F.col(SOURCE_FILE).desc(), F.col(LINE_NUMBER).desc()
    )
    records = records.withColumn("_rank", F.row_number().over(latest_of_day)).where("_rank = 1")
    records = records.withColumn(
        "attributes_hash",
        F.sha2(F.concat_ws("|", *[F.coalesce(F.col(a).cast("string"), F.lit("∅")) for a in TRACKED_ATTRIBUTES]), 256),
    )
    in_time = Window.partitionBy("member_key").orderBy("effective_from")
    changes = records.withColumn("_previous_hash", F.lag("attributes_hash").over(in_time)).where(
        F.col("_previous_hash").isNull() | (F.col("_previous_hash") != F.col("attributes_hash"))
    )
    next_from = F.lead("effective_from").over(in_time)
    versions = (
        changes.withColumn("version", F.row_number().over(in_time))
        .withColumn("effective_to", F.date_sub(next_from, 1))
        .withColumn("is_current_record", next_from.isNull())
    )
    return versions.select(*DIM_MEMBERS_COLUMNS)


def touched_members(eligibility: DataFrame, start: date, end: date) -> DataFrame:
    """The members with an enrolment record received on a day of start..end."""
    return eligibility.where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end))).select("member_key").distinct()


def dim_members_changes(eligibility: DataFrame, stored: DataFrame, members: DataFrame) -> DataFrame:
    """The derived history of `members` (from all their enrolment records), plus their stored versions that the
    history no longer has, flagged `_delete`: MERGEd with DIM_MEMBERS_TOUCHED_MERGE, the dimension becomes what a
    derivation from every record would give, while every other member is left alone."""
    derived = dim_members(eligibility.join(members, "member_key", "left_semi"))
    stale = (
        stored.join(members, "member_key", "left_semi")
        .join(derived.select("member_key", "effective_from"), ["member_key", "effective_from"], "left_anti")
        .select(*DIM_MEMBERS_COLUMNS)
    )
    return derived.withColumn("_delete", F.lit(False)).unionByName(stale.withColumn("_delete", F.lit(True)))


_CHANGED = """(t.attributes_hash <> s.attributes_hash OR t.version <> s.version
                  OR NOT (t.effective_to <=> s.effective_to) OR t.is_current_record <> s.is_current_record)"""
# Brings the stored dimension to the derived one (of every member), touching only rows that changed.
_MATCH = """
MERGE INTO {target} USING {source}
ON t.member_key = s.member_key AND t.effective_from = s.effective_from
"""
DIM_MEMBERS_MERGE = "".join(
    (_MATCH, "WHEN MATCHED AND ", _CHANGED, " THEN UPDATE SET *\n", "WHEN NOT MATCHED THEN INSERT *\n")
    + ("WHEN NOT MATCHED BY SOURCE THEN DELETE\n",)
)
# Brings the stored versions of some members to dim_members_changes(...): other members' rows are not read.
_ASSIGNMENTS = ", ".join(f"{c} = s.{c}" for c in DIM_MEMBERS_COLUMNS)
_COLUMNS = ", ".join(DIM_MEMBERS_COLUMNS)
_VALUES = ", ".join(f"s.{c}" for c in DIM_MEMBERS_COLUMNS)
DIM_MEMBERS_TOUCHED_MERGE = "".join(
    (_MATCH, "WHEN MATCHED AND s._delete THEN DELETE\n", "WHEN MATCHED AND ", _CHANGED, " THEN UPDATE SET ")
    + (_ASSIGNMENTS, "\nWHEN NOT MATCHED AND NOT s._delete THEN INSERT (", _COLUMNS, ")\n  VALUES (", _VALUES, ")\n")
)
