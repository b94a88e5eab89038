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
from healthcare_assets.transforms.common import pseudonymise, typed

# Safe-harbour de-identification keeps the birth year only, and folds ages over 89 together.
MAX_REPORTED_AGE = 90


def _deduplicate(frame: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """Keeps the first delivery of each key (earliest file, then line)."""
    first = Window.partitionBy(*key).orderBy(SOURCE_FILE, LINE_NUMBER)
    return frame.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank")


def silver_key(source: Source) -> tuple[str, ...]:
    """The natural key of a silver table: the source key with the member id pseudonymised."""
    return tuple("member_key" if name == "member_id" else name for name in source.key)


def drop_earlier_deliveries(frame: DataFrame, stored: DataFrame, source: Source, start: date) -> DataFrame:
    """Drops records already stored for a day before `start`: a re-delivered record counts once."""
    key = list(silver_key(source))
    earlier = stored.where(F.col(PARTITION_COLUMN) < F.lit(start)).select(*key)
    return frame.join(earlier, key, "left_anti")


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


# Brings the stored dimension to the derived one, touching only rows that changed.
DIM_MEMBERS_MERGE = """
MERGE INTO {target} USING {source}
ON t.member_key = s.member_key AND t.effective_from = s.effective_from
WHEN MATCHED AND (t.attributes_hash <> s.attributes_hash OR t.version <> s.version
                  OR NOT (t.effective_to <=> s.effective_to) OR t.is_current_record <> s.is_current_record)
  THEN UPDATE SET *
WHEN NOT MATCHED THEN INSERT *
WHEN NOT MATCHED BY SOURCE THEN DELETE
"""
