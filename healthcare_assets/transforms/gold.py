"""Silver -> gold feature tables: claim-level fraud features and member-level risk features."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from healthcare_assets.domain.features import (
    CHRONIC_CONDITIONS,
    CLAIM_CATEGORICAL_FEATURES,
    CLAIM_CONTEXT_FEATURES,
    CLAIM_NUMERIC_FEATURES,
    MEMBER_UTILISATION_AMOUNTS,
    MEMBER_UTILISATION_COUNTS,
)
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms.common import age_group

# How far back member features (12-month utilisation) look.
CLAIM_HISTORY_DAYS = 365
# How far back a claim's features look (member history, price and coding norms): received days, the claim's own
# day included. Fixed windows keep a feature's meaning the same on day 1 and day 365.
CLAIM_FEATURE_WINDOW_DAYS = 90
SHORT_RATE_DAYS = 30  # the window of claim_rate_30d (claim_rate_90d uses the whole feature window)
# patient_age assumes a birthday on 1 July of the birth year: silver keeps only the year, and a mid-year birthday
# is off by at most half a year for anyone, while ages taken as service year - birth year jump on 1 January.
ASSUMED_BIRTH_MONTH = 7


def _demographics_at_service(claims: DataFrame, members: DataFrame) -> DataFrame:
    """Point-in-time join: the member version valid on the service date (the first version for earlier dates)."""
    versions = members.select(
        "member_key",
        "version",
        "gender",
        "birth_year",
        "geographic_region",
        "plan_code",
        "effective_from",
        "effective_to",
    )
    joined = claims.join(versions, "member_key", "left")
    valid = (F.col("effective_from") <= F.col("service_start_date")) & (
        F.col("effective_to").isNull() | (F.col("service_start_date") <= F.col("effective_to"))
    )
    best = Window.partitionBy("claim_id").orderBy(valid.desc(), F.col("version").asc_nulls_last())
    return (
        joined.withColumn("_rank", F.row_number().over(best))
        .where("_rank = 1")
        .drop("_rank", "version", "effective_from", "effective_to")
    )


def _received_before() -> Column:
    """The history claim (h_*) was received before the claim: an earlier day, or the same day earlier in
    service order (claim id breaking ties, as ids are given in order of receipt)."""
    return (F.col("h_ingest_date") < F.col(PARTITION_COLUMN)) | (
        (F.col("h_ingest_date") == F.col(PARTITION_COLUMN))
        & (
            (F.col("h_service_start_date") < F.col("service_start_date"))
            | (
                (F.col("h_service_start_date") == F.col("service_start_date"))
                & (F.col("h_claim_id") < F.col("claim_id"))
            )
        )
    )


def _in_window(history_day: str) -> Column:
    """A history day inside the claim's feature window (CLAIM_FEATURE_WINDOW_DAYS up to its own day)."""
    return _within_days(history_day, CLAIM_FEATURE_WINDOW_DAYS)


def _within_days(history_day: str, days: int) -> Column:
    """A history day within the `days` calendar days up to and including the claim's own day."""
    return (F.col(history_day) <= F.col(PARTITION_COLUMN)) & (
        F.col(history_day) > F.date_sub(F.col(PARTITION_COLUMN), days)
    )


def _context_features(claims: DataFrame, history: DataFrame) -> DataFrame:
    """Per claim: resubmissions, lines of the same visit, and how its price and coding compare with the
    claims received in its window up to its own day (so a day alone and a backfill give identical rows)."""
    visit = ["member_key", "provider_id", "service_start_date"]
    keys = claims.select("claim_id", PARTITION_COLUMN, *visit, "procedure_code", "diagnosis_code")
    same_visit = history.select(
        *visit,
        F.col("claim_id").alias("h_claim_id"),
        F.col("procedure_code").alias("h_procedure_code"),
        F.col(PARTITION_COLUMN).alias("h_ingest_date"),
        F.col("service_start_date").alias("h_service_start_date"),
    )
    visits = (
        keys.join(same_visit, visit)
        .where(_in_window("h_ingest_date"))
        .groupBy("claim_id")
        .agg(
            F.count("h_claim_id").alias("lines_same_visit"),
            F.sum((_received_before() & (F.col("h_procedure_code") == F.col("procedure_code"))).cast("int")).alias(
                "identical_claims_before"
            ),
        )
    )
    # Daily aggregates keep the window joins small: one row per code (pair) and day.
    daily_prices = history.groupBy(F.col("procedure_code"), F.col(PARTITION_COLUMN).alias("h_day")).agg(
        F.sum(F.log(F.col("claim_amount").cast("double"))).alias("log_sum"), F.count("*").alias("n")
    )
    typical = (
        keys.join(daily_prices, "procedure_code")
        .where(_in_window("h_day"))
        .groupBy("claim_id")
        .agg(F.exp(F.sum("log_sum") / F.sum("n")).alias("_typical_amount"))
    )
    daily_pairs = history.groupBy(
        "diagnosis_code", F.col("procedure_code").alias("h_procedure_code"), F.col(PARTITION_COLUMN).alias("h_day")
    ).agg(F.count("*").alias("n"))
    coding = (
        keys.join(daily_pairs, "diagnosis_code")
        .where(_in_window("h_day"))
        .groupBy("claim_id")
        .agg(
            (
                F.sum(F.when(F.col("h_procedure_code") == F.col("procedure_code"), F.col("n")).otherwise(0))
                / F.sum("n")
            ).alias("procedure_share_for_diagnosis")
        )
    )
    return (
        claims.join(visits, "claim_id", "left")
        .join(typical, "claim_id", "left")
        .join(coding, "claim_id", "left")
        .withColumn(
            "amount_to_procedure_typical",
            F.round(F.col("claim_amount").cast("double") / F.col("_typical_amount"), 4),
        )
        .withColumn("procedure_share_for_diagnosis", F.round("procedure_share_for_diagnosis", 4))
        .drop("_typical_amount")
    )


def _received_days(claims: DataFrame, history: DataFrame) -> DataFrame:
    """Per claim day: how many days of the short and of the whole feature window hold received claims."""
    days = history.select(F.col(PARTITION_COLUMN).alias("h_day")).distinct()
    return (
        claims.select(PARTITION_COLUMN)
        .distinct()
        .crossJoin(days)
        .where(_in_window("h_day"))
        .groupBy(PARTITION_COLUMN)
        .agg(
            F.sum(_within_days("h_day", SHORT_RATE_DAYS).cast("int")).alias("_short_days"),
            F.count("h_day").alias("history_days"),
        )
    )


def _per_window(count: str, window_days: int, received_days: str) -> Column:
    """A claim count as a rate per `window_days` days, over the days of the window that hold received claims."""
    return F.round(F.coalesce(F.col(count), F.lit(0)) * F.lit(window_days) / F.col(received_days), 4)


def _history_features(claims: DataFrame, history: DataFrame) -> DataFrame:
    """Per claim: the member's claims received before it (earlier day, or same day earlier in service order)
    within the feature window, as rates and ratios that mean the same whatever the length of the history.

    A self-join rather than a window so that a claim's features depend only on
    what was received up to its own day: one day at a time and a backfill of
    many days give identical rows.
    """
    previous = history.select(
        "member_key",
        F.col("claim_id").alias("h_claim_id"),
        F.col(PARTITION_COLUMN).alias("h_ingest_date"),
        F.col("service_start_date").alias("h_service_start_date"),
        F.col("claim_amount").cast("double").alias("h_claim_amount"),
    )
    pairs = (
        claims.select("claim_id", "member_key", PARTITION_COLUMN, "service_start_date")
        .join(previous, "member_key")
        .where(_received_before() & _in_window("h_ingest_date"))
    )
    aggregated = pairs.groupBy("claim_id").agg(
        F.sum(_within_days("h_ingest_date", SHORT_RATE_DAYS).cast("int")).alias("_short_claims"),
        F.count("h_claim_id").alias("_window_claims"),
        F.avg("h_claim_amount").alias("_member_mean_amount"),
        F.max("h_service_start_date").alias("_last_service_date"),
    )
    last_service = F.col("_last_service_date")
    member_mean = F.col("_member_mean_amount")
    return (
        claims.join(aggregated, "claim_id", "left")
        .join(_received_days(claims, history), PARTITION_COLUMN, "left")
        .withColumn("claim_rate_30d", _per_window("_short_claims", SHORT_RATE_DAYS, "_short_days"))
        .withColumn("claim_rate_90d", _per_window("_window_claims", CLAIM_FEATURE_WINDOW_DAYS, "history_days"))
        .withColumn(
            "amount_to_member_mean",
            F.when(member_mean > 0, F.round(F.col("claim_amount").cast("double") / member_mean, 4)),
        )
        # a service date before the latest known one counts as 0 days; no earlier claim in the window: null
        .withColumn(
            "days_since_last_claim",
            F.when(last_service.isNotNull(), F.greatest(F.datediff("service_start_date", last_service), F.lit(0))),
        )
        .drop("_short_claims", "_window_claims", "_member_mean_amount", "_last_service_date", "_short_days")
    )


def _patient_age(birth_year: Column, service_date: Column) -> Column:
    """Whole years since 1 July of the birth year (0 before it): the age under a mid-year birthday."""
    before_birthday = F.when(F.month(service_date) < ASSUMED_BIRTH_MONTH, 1).otherwise(0)
    return F.greatest(F.year(service_date) - birth_year - before_birthday, F.lit(0))


# Numeric feature types, the same on every engine.
CLAIM_FEATURE_TYPES = {
    "patient_age": "int",
    "provider_experience_years": "int",
    "days_since_last_claim": "int",
    "claim_rate_30d": "double",
    "claim_rate_90d": "double",
    "amount_to_member_mean": "double",
    "history_days": "int",
    "claim_duration_days": "int",
    "identical_claims_before": "int",
    "lines_same_visit": "int",
    "amount_to_procedure_typical": "double",
    "procedure_share_for_diagnosis": "double",
}


def claim_features(claims: DataFrame, claim_history: DataFrame, members: DataFrame) -> DataFrame:
    """The claim-level features of the fraud autoencoder, one row per claim of the partition.

    `claims` are the partition's silver claims, `claim_history` the silver
    claims of the look-back window (including the partition), `members` the
    SCD2 member dimension. `days_since_last_claim` and `amount_to_member_mean`
    are null when the member has no earlier claim in the feature window. Types
    are pinned: the engines infer different ones for the same expressions.
    """
    frame = _history_features(claims, claim_history)
    frame = _context_features(frame, claim_history)
    frame = _demographics_at_service(frame, members)
    frame = (
        frame.withColumn("patient_age", _patient_age(F.col("birth_year"), F.col("service_start_date")))
        .withColumn("patient_age_group", age_group(F.col("patient_age")))
        .withColumn("claim_duration_days", F.datediff("service_end_date", "service_start_date"))
        .withColumnRenamed("gender", "patient_gender")
        .withColumn("claim_date", F.col("service_start_date"))
    )
    for name, dtype in CLAIM_FEATURE_TYPES.items():
        frame = frame.withColumn(name, F.col(name).cast(dtype))
    return frame.select(
        "claim_id",
        "member_key",
        "provider_id",
        "claim_date",
        *CLAIM_NUMERIC_FEATURES,
        *CLAIM_CONTEXT_FEATURES,
        *CLAIM_CATEGORICAL_FEATURES,
        "patient_age_group",
        "plan_code",
        PARTITION_COLUMN,
    )


def _claim_utilisation(claims: DataFrame) -> DataFrame:
    return claims.groupBy("member_key").agg(
        F.count("claim_id").alias("num_claims"),
        F.sum(F.when(F.col("claim_type") == "emergency", 1).otherwise(0)).alias("num_er_visits"),
        F.sum(F.when(F.col("claim_type") == "inpatient", 1).otherwise(0)).alias("num_inpatient_stays"),
        F.sum(F.when(F.col("claim_type") == "outpatient", 1).otherwise(0)).alias("num_outpatient_visits"),
        F.sum("claim_amount").alias("total_claim_amount"),
        F.sum("paid_amount").alias("total_paid_amount"),
        F.countDistinct("provider_id").alias("num_distinct_providers"),
        *[
            F.max(F.when(F.col("diagnosis_code").startswith(prefix), 1).otherwise(0)).alias(f"_dx_{name}")
            for name, (prefix, _) in CHRONIC_CONDITIONS.items()
        ],
    )


def _pharmacy_utilisation(rx: DataFrame) -> DataFrame:
    return rx.groupBy("member_key").agg(
        F.count("rx_claim_id").alias("num_rx_fills"),
        F.sum("rx_amount").alias("total_rx_amount"),
        *[
            F.max(F.when(F.col("drug_class") == drug_class, 1).otherwise(0)).alias(f"_rx_{name}")
            for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
            if drug_class is not None
        ],
    )


def _immunization_history(immunizations: DataFrame, as_of: date) -> DataFrame:
    given = immunizations.where(F.col("administered_date") <= F.lit(as_of))
    return given.groupBy("member_key").agg(
        F.count("immunization_id").alias("num_immunizations"),
        F.max(F.when(F.col("vaccine_code") == "FLU", F.col("administered_date"))).alias("last_flu_vaccine_date"),
        F.array_sort(F.collect_set("vaccine_code")).alias("vaccines_received"),  # sets have no order
    )


def member_features(
    members: DataFrame, claims: DataFrame, rx: DataFrame, immunizations: DataFrame, as_of: date
) -> DataFrame:
    """One row per member (current version): demographics, risk factors, 12-month utilisation and cost,
    chronic-condition flags from diagnoses and maintenance drugs, immunization history."""
    start = F.date_sub(F.lit(as_of), CLAIM_HISTORY_DAYS)
    # Silver guarantees a record is received no earlier than its service or fill date, so only the window's
    # daily partitions can hold its claims: reading just those keeps the cost flat as history grows.
    received = F.col(PARTITION_COLUMN) > start
    recent_claims = claims.where(
        received & (F.col("service_start_date") > start) & (F.col("service_start_date") <= F.lit(as_of))
    )
    recent_rx = rx.where(received & (F.col("fill_date") > start) & (F.col("fill_date") <= F.lit(as_of)))
    current = members.where("is_current_record").select(
        "member_key", "gender", "birth_year", "geographic_region", "plan_code", "bmi", "smoker", "enrollment_status"
    )
    frame = (
        current.join(_claim_utilisation(recent_claims), "member_key", "left")
        .join(_pharmacy_utilisation(recent_rx), "member_key", "left")
        .join(_immunization_history(immunizations, as_of), "member_key", "left")
    )
    frame = frame.fillna(0, subset=list(MEMBER_UTILISATION_COUNTS)).fillna(0.0, subset=list(MEMBER_UTILISATION_AMOUNTS))
    for name, (_, drug_class) in CHRONIC_CONDITIONS.items():
        from_dx = F.coalesce(F.col(f"_dx_{name}"), F.lit(0))
        from_rx = F.coalesce(F.col(f"_rx_{name}"), F.lit(0)) if drug_class is not None else F.lit(0)
        frame = frame.withColumn(f"has_{name}", F.greatest(from_dx, from_rx) == 1)
    flags = [f"has_{name}" for name in CHRONIC_CONDITIONS]
    age = F.lit(as_of.year) - F.col("birth_year")
    frame = (
        frame.withColumn("age", age.cast("int"))
        .withColumn("age_group", age_group(age))
        .withColumn("is_smoker", F.col("smoker") == "Y")
        .withColumn("chronic_condition_count", sum((F.col(f).cast("int") for f in flags), F.lit(0)))
        .withColumn("total_cost", F.col("total_paid_amount") + F.col("total_rx_amount"))
        .withColumn("vaccines_received", F.coalesce("vaccines_received", F.array().cast("array<string>")))
        .withColumn("as_of_date", F.lit(as_of).cast("date"))
    )
    return frame.select(
        "member_key",
        "as_of_date",
        "age",
        "age_group",
        "gender",
        "geographic_region",
        "plan_code",
        "enrollment_status",
        "bmi",
        "is_smoker",
        *flags,
        "chronic_condition_count",
        *MEMBER_UTILISATION_COUNTS,
        *MEMBER_UTILISATION_AMOUNTS,
        "total_cost",
        "last_flu_vaccine_date",
        "vaccines_received",
    )
