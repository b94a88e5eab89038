"""Silver -> gold feature tables: claim-level fraud features and member-level risk features."""

from __future__ import annotations

from dataclasses import dataclass
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
from healthcare_assets.transforms.common import age_group, earliest, received_from

# How far back member features (12-month utilisation) look.
CLAIM_HISTORY_DAYS = 365
# How far back a claim's features look (member history, price and coding norms): received days, the claim's own
# day included. Fixed windows keep a feature's meaning the same on day 1 and day 365.
CLAIM_FEATURE_WINDOW_DAYS = 90
SHORT_RATE_DAYS = 30  # the window of claim_rate_30d (claim_rate_90d uses the whole feature window)
# patient_age assumes a birthday on 1 July of the birth year: silver keeps only the year, and a mid-year birthday
# is off by at most half a year for anyone, while ages taken as service year - birth year jump on 1 January.
ASSUMED_BIRTH_MONTH = 7


def _demographics_at_service(claims: DataFrame, members: DataFrame, earliest_service: date | None) -> DataFrame:
    """Point-in-time join: the member version valid on the service date (the first version for earlier dates).
    A version that ended before `earliest_service` (the claims' earliest service day) can only be a first one."""
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
    if earliest_service is not None:
        versions = versions.where(
            (F.col("version") == 1) | F.col("effective_to").isNull() | (F.col("effective_to") >= earliest_service)
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


# Daily aggregates of the received claims, persisted per ingest day so that the window features sum a
# window of small tables instead of re-reading the window's claims. One row per member visit line (member,
# provider, service day, procedure), per procedure and per diagnosis-procedure pair, and received day.
VISIT_LINE = ("member_key", "provider_id", "service_start_date", "procedure_code")
# Sums of decimal(12,2) money keep the type a sum over the claims gives (precision + 10).
MONEY_SUM_TYPE = "decimal(22,2)"


def _claim_type_count(claim_type: str) -> Column:
    return F.sum(F.when(F.col("claim_type") == claim_type, 1).otherwise(0))


def member_claims_daily(claims: DataFrame) -> DataFrame:
    """Per member visit line and received day: claim counts by type, billed and paid amounts, diagnosis flags."""
    return claims.groupBy(*VISIT_LINE, PARTITION_COLUMN).agg(
        F.count("claim_id").alias("claims"),
        _claim_type_count("emergency").alias("er_visits"),
        _claim_type_count("inpatient").alias("inpatient_stays"),
        _claim_type_count("outpatient").alias("outpatient_visits"),
        F.sum("claim_amount").alias("claim_amount_sum"),
        F.sum("paid_amount").alias("paid_amount_sum"),
        *[
            F.max(F.when(F.col("diagnosis_code").startswith(prefix), 1).otherwise(0)).alias(f"dx_{name}")
            for name, (prefix, _) in CHRONIC_CONDITIONS.items()
        ],
    )


def procedure_prices_daily(claims: DataFrame) -> DataFrame:
    """Per procedure and received day: claims and the sum of their log amounts (for the geometric mean)."""
    return claims.groupBy("procedure_code", PARTITION_COLUMN).agg(
        F.sum(F.log(F.col("claim_amount").cast("double"))).alias("log_amount_sum"), F.count("*").alias("claims")
    )


def coding_pairs_daily(claims: DataFrame) -> DataFrame:
    """Per diagnosis-procedure pair and received day: claims."""
    return claims.groupBy("diagnosis_code", "procedure_code", PARTITION_COLUMN).agg(F.count("*").alias("claims"))


def member_rx_daily(rx: DataFrame) -> DataFrame:
    """Per member, fill day and received day: fills, amount and maintenance-drug flags."""
    return rx.groupBy("member_key", "fill_date", PARTITION_COLUMN).agg(
        F.count("rx_claim_id").alias("fills"),
        F.sum("rx_amount").alias("rx_amount_sum"),
        *[
            F.max(F.when(F.col("drug_class") == drug_class, 1).otherwise(0)).alias(f"rx_{name}")
            for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
            if drug_class is not None
        ],
    )


@dataclass(frozen=True)
class ClaimAggregates:
    """The daily aggregates of the claims received in a claim's feature window (its own day included)."""

    member_lines: DataFrame  # member_claims_daily
    procedure_prices: DataFrame  # procedure_prices_daily
    coding_pairs: DataFrame  # coding_pairs_daily

    @classmethod
    def of(cls, claims: DataFrame) -> ClaimAggregates:
        return cls(member_claims_daily(claims), procedure_prices_daily(claims), coding_pairs_daily(claims))


def _history(aggregates: DataFrame, *join_keys: str) -> DataFrame:
    """The aggregates as history rows: every column but the join keys prefixed `h_`."""
    return aggregates.select([F.col(c) if c in join_keys else F.col(c).alias(f"h_{c}") for c in aggregates.columns])


def _same_day_before(claims: DataFrame) -> DataFrame:
    """Pairs of a claim and each claim of its member received the same day before it (service order, then id)."""
    earlier = claims.select(
        "member_key",
        F.col(PARTITION_COLUMN).alias("h_ingest_date"),
        F.col("claim_id").alias("h_claim_id"),
        F.col("service_start_date").alias("h_service_start_date"),
        F.col("provider_id").alias("h_provider_id"),
        F.col("procedure_code").alias("h_procedure_code"),
        F.col("claim_amount").alias("h_claim_amount"),
    )
    keys = claims.select("claim_id", "member_key", PARTITION_COLUMN, "service_start_date")
    return keys.join(earlier, "member_key").where(
        (F.col("h_ingest_date") == F.col(PARTITION_COLUMN)) & _received_before()
    )


def _window_sums(claims: DataFrame, daily: DataFrame, keys: list[str], sums: list[str]) -> DataFrame:
    """Per day of the claims and value of `keys`: the `daily` aggregates summed over that day's feature window
    (columns h_<sum>). Summed before the claims join them, a claim meets one row, not one per window day."""
    days = claims.select(PARTITION_COLUMN).distinct()
    return (
        days.crossJoin(_history(daily, *keys))
        .where(_in_window("h_ingest_date"))
        .groupBy(PARTITION_COLUMN, *keys)
        .agg(*[F.sum(f"h_{name}").alias(f"h_{name}") for name in sums])
    )


def _context_features(
    claims: DataFrame, aggregates: ClaimAggregates, same_day: DataFrame, earliest_service: date | None
) -> DataFrame:
    """Per claim: resubmissions, lines of the same visit, and how its price and coding compare with the
    claims received in its window up to its own day (so a day alone and a backfill give identical rows)."""
    visit = ["member_key", "provider_id", "service_start_date"]
    keys = claims.select("claim_id", PARTITION_COLUMN, *visit, "procedure_code", "diagnosis_code")
    # a visit's lines sit in partitions from its service day on
    lines = _history(received_from(aggregates.member_lines, earliest_service), *visit)
    visits = (
        keys.join(lines, visit)
        .where(_in_window("h_ingest_date"))
        .groupBy("claim_id")
        .agg(
            F.sum("h_claims").alias("lines_same_visit"),
            F.sum(
                F.when(
                    (F.col("h_ingest_date") < F.col(PARTITION_COLUMN))
                    & (F.col("h_procedure_code") == F.col("procedure_code")),
                    F.col("h_claims"),
                ).otherwise(0)
            ).alias("_identical_earlier_days"),
        )
    )
    identical_same_day = (
        same_day.join(keys.select("claim_id", "provider_id", "procedure_code"), "claim_id")
        .where(
            (F.col("h_provider_id") == F.col("provider_id")) & (F.col("h_procedure_code") == F.col("procedure_code"))
        )
        .where(F.col("h_service_start_date") == F.col("service_start_date"))
        .groupBy("claim_id")
        .agg(F.count("h_claim_id").alias("_identical_same_day"))
    )
    # the window's prices and codings summed once per claim day, then looked up per claim
    prices = _window_sums(claims, aggregates.procedure_prices, ["procedure_code"], ["log_amount_sum", "claims"])
    typical = keys.join(prices, [PARTITION_COLUMN, "procedure_code"]).select(
        "claim_id", F.exp(F.col("h_log_amount_sum") / F.col("h_claims")).alias("_typical_amount")
    )
    pairs = _window_sums(claims, aggregates.coding_pairs, ["diagnosis_code", "procedure_code"], ["claims"])
    diagnoses = pairs.groupBy(PARTITION_COLUMN, "diagnosis_code").agg(F.sum("h_claims").alias("_diagnosis_claims"))
    coding = (
        keys.join(diagnoses, [PARTITION_COLUMN, "diagnosis_code"])
        .join(pairs, [PARTITION_COLUMN, "diagnosis_code", "procedure_code"], "left")
        .select(
            "claim_id",
            (F.coalesce(F.col("h_claims"), F.lit(0)) / F.col("_diagnosis_claims")).alias(
                "procedure_share_for_diagnosis"
            ),
        )
    )
    identical = F.coalesce(F.col("_identical_earlier_days"), F.lit(0)) + F.coalesce(
        F.col("_identical_same_day"), F.lit(0)
    )
    return (
        claims.join(visits, "claim_id", "left")
        .join(identical_same_day, "claim_id", "left")
        .join(typical, "claim_id", "left")
        .join(coding, "claim_id", "left")
        .withColumn("identical_claims_before", F.when(F.col("lines_same_visit").isNotNull(), identical))
        .withColumn(
            "amount_to_procedure_typical",
            F.round(F.col("claim_amount").cast("double") / F.col("_typical_amount"), 4),
        )
        .withColumn("procedure_share_for_diagnosis", F.round("procedure_share_for_diagnosis", 4))
        .drop("_typical_amount", "_identical_earlier_days", "_identical_same_day")
    )


def _received_days(claims: DataFrame, aggregates: ClaimAggregates) -> DataFrame:
    """Per claim day: how many days of the short and of the whole feature window hold received claims."""
    days = aggregates.procedure_prices.select(F.col(PARTITION_COLUMN).alias("h_day")).distinct()
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


def _history_features(claims: DataFrame, aggregates: ClaimAggregates, same_day: DataFrame) -> DataFrame:
    """Per claim: the member's claims received before it (earlier day, or same day earlier in service order)
    within the feature window, as rates and ratios that mean the same whatever the length of the history.

    Earlier days come from the member's daily aggregates, the claim's own day from the day's claims: a claim's
    features depend only on what was received up to it, so one day at a time and a backfill give identical rows.
    """
    lines = _history(aggregates.member_lines, "member_key")
    earlier_days = (
        claims.select("claim_id", "member_key", PARTITION_COLUMN)
        .join(lines, "member_key")
        .where((F.col("h_ingest_date") < F.col(PARTITION_COLUMN)) & _in_window("h_ingest_date"))
        .select(
            "claim_id",
            PARTITION_COLUMN,
            "h_ingest_date",
            "h_claims",
            F.col("h_claim_amount_sum").alias("h_amount"),
            "h_service_start_date",
        )
    )
    own_day = same_day.select(
        "claim_id",
        PARTITION_COLUMN,
        "h_ingest_date",
        F.lit(1).cast("long").alias("h_claims"),
        F.col("h_claim_amount").cast(MONEY_SUM_TYPE).alias("h_amount"),
        "h_service_start_date",
    )
    pairs = earlier_days.unionByName(own_day)
    aggregated = pairs.groupBy("claim_id").agg(
        F.sum(F.when(_within_days("h_ingest_date", SHORT_RATE_DAYS), F.col("h_claims")).otherwise(0)).alias(
            "_short_claims"
        ),
        F.sum("h_claims").alias("_window_claims"),
        (F.sum("h_amount").cast("double") / F.sum("h_claims")).alias("_member_mean_amount"),
        F.max("h_service_start_date").alias("_last_service_date"),
    )
    return history_rates(claims.join(aggregated, "claim_id", "left"), _received_days(claims, aggregates))


def history_rates(claims: DataFrame, received_days: DataFrame) -> DataFrame:
    """The history features from each claim's earlier-claim totals (_short_claims, _window_claims,
    _member_mean_amount, _last_service_date) and its day's received days (_short_days, history_days)."""
    last_service = F.col("_last_service_date")
    member_mean = F.col("_member_mean_amount")
    return (
        claims.join(received_days, PARTITION_COLUMN, "left")
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
    """The claim-level features from the silver claims of the look-back window (including the partition)."""
    return claim_features_from_aggregates(claims, ClaimAggregates.of(claim_history), members)


def claim_features_from_aggregates(claims: DataFrame, aggregates: ClaimAggregates, members: DataFrame) -> DataFrame:
    """The claim-level features of the fraud autoencoder, one row per claim of the partition.

    `claims` are the partition's silver claims, `aggregates` the daily
    aggregates of the look-back window (including the partition), `members` the
    SCD2 member dimension. `days_since_last_claim` and `amount_to_member_mean`
    are null when the member has no earlier claim in the feature window. Types
    are pinned: the engines infer different ones for the same expressions.
    """
    same_day = _same_day_before(claims)
    earliest_service = earliest(claims, "service_start_date")
    frame = _history_features(claims, aggregates, same_day)
    return with_demographics(
        _context_features(frame, aggregates, same_day, earliest_service), members, earliest_service
    )


def with_demographics(frame: DataFrame, members: DataFrame, earliest_service: date | None) -> DataFrame:
    """The claims with their history and context features, completed with the member's demographics at service,
    durations and pinned types, in the table's column order."""
    frame = _demographics_at_service(frame, members, earliest_service)
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


# member_features' 12-month window as running state (gold.member_window), advanced by each run's days instead of
# re-summing the window: per member the window's sums and distinct providers, the last service (fill) day of each
# chronic-condition diagnosis (maintenance drug), since a condition holds while that day is inside the window,
# and the immunization history (no window).
_CLAIM_SUMS = {
    "num_claims": "claims",
    "num_er_visits": "er_visits",
    "num_inpatient_stays": "inpatient_stays",
    "num_outpatient_visits": "outpatient_visits",
    "total_claim_amount": "claim_amount_sum",
    "total_paid_amount": "paid_amount_sum",
}
_RX_SUMS = {"num_rx_fills": "fills", "total_rx_amount": "rx_amount_sum"}
_DX_LAST = {f"last_dx_{name}": f"dx_{name}" for name in CHRONIC_CONDITIONS}
_RX_LAST = {
    f"last_rx_{name}": f"rx_{name}" for name, (_, drug_class) in CHRONIC_CONDITIONS.items() if drug_class is not None
}
_MONEY_SUMS = ("total_claim_amount", "total_paid_amount", "total_rx_amount")
_WINDOW_SUMS = (*_CLAIM_SUMS, "num_distinct_providers", *_RX_SUMS, "num_immunizations")
_WINDOW_LATEST = (*_DX_LAST, *_RX_LAST, "last_flu_vaccine_date")
_PAIR = ["member_key", "provider_id"]


@dataclass(frozen=True)
class WindowRecords:
    """What the member window is built from: the daily aggregates and the immunizations, every received day."""

    claim_lines: DataFrame  # member_claims_daily
    rx_fills: DataFrame  # member_rx_daily
    immunizations: DataFrame  # silver immunizations


def _received(frame: DataFrame, after: date | None, through: date) -> DataFrame:
    frame = frame.where(F.col(PARTITION_COLUMN) <= F.lit(through))
    return frame if after is None else frame.where(F.col(PARTITION_COLUMN) > F.lit(after))


def _between(day: str, after: Column, through: Column) -> Column:
    return (F.col(day) > after) & (F.col(day) <= through)


def _signed_changes(added: DataFrame, expired: DataFrame | None, sums: dict, latest: dict, day: str) -> DataFrame:
    """Per member: the sums of the rows added to the window minus those of the rows that left it, and the last
    day of each flag among the added rows."""
    flag_days = [F.when(F.col(flag) == 1, F.col(day)).alias(name) for name, flag in latest.items()]
    rows = added.select("member_key", *[F.col(source).alias(name) for name, source in sums.items()], *flag_days)
    if expired is not None:
        no_days = [F.lit(None).cast("date").alias(name) for name in latest]
        rows = rows.unionByName(
            expired.select("member_key", *[(-F.col(source)).alias(name) for name, source in sums.items()], *no_days)
        )
    return rows.groupBy("member_key").agg(
        *[F.sum(name).alias(name) for name in sums], *[F.max(name).alias(name) for name in latest]
    )


def _provider_changes(
    claim_lines: DataFrame, added: DataFrame, expired: DataFrame | None, previous: date | None, as_of: date, days: int
) -> DataFrame:
    """Per member: providers that entered the window minus providers that left it. Only a pair of the added or
    the leaving lines can do either, so only those pairs' lines in the two windows are read and regrouped."""
    if expired is None:
        return added.groupBy("member_key").agg(F.countDistinct("provider_id").alias("num_distinct_providers"))
    assert previous is not None
    before, start = F.date_sub(F.lit(previous), days), F.date_sub(F.lit(as_of), days)
    candidates = added.select(*_PAIR).unionByName(expired.select(*_PAIR)).distinct()
    lines = _received(claim_lines, None, as_of).where(
        (F.col(PARTITION_COLUMN) > before) & (F.col("service_start_date") > before)
    )
    in_previous = (F.col(PARTITION_COLUMN) <= F.lit(previous)).cast("int")  # its service day is then in it too
    in_new = (F.col("service_start_date") > start).cast("int")
    pairs = (
        lines.join(candidates, _PAIR, "left_semi")
        .groupBy(*_PAIR)
        .agg(F.max(in_new).alias("_in_new"), F.max(in_previous).alias("_in_previous"))
    )
    return pairs.groupBy("member_key").agg(
        F.sum(F.col("_in_new") - F.col("_in_previous")).alias("num_distinct_providers")
    )


def _immunization_changes(given: DataFrame) -> DataFrame:
    return given.groupBy("member_key").agg(
        F.count("immunization_id").alias("num_immunizations"),
        F.max(F.when(F.col("vaccine_code") == "FLU", F.col("administered_date"))).alias("last_flu_vaccine_date"),
        F.array_sort(F.collect_set("vaccine_code")).alias("vaccines_received"),  # sets have no order
    )


def _with_changes(window: DataFrame | None, changes: DataFrame) -> DataFrame:
    """The window with the changes applied: sums added, latest days the later, vaccine sets united."""
    no_vaccines = F.array().cast("array<string>")
    if window is not None:
        renamed = changes.select("member_key", *[F.col(c).alias(f"_new_{c}") for c in changes.columns[1:]])
        frame = window.drop("as_of_date").join(renamed, "member_key", "full")
        for name in _WINDOW_SUMS:
            added = F.coalesce(F.col(f"_new_{name}"), F.lit(0))
            frame = frame.withColumn(name, F.coalesce(F.col(name), F.lit(0)) + added)
        for name in _WINDOW_LATEST:
            frame = frame.withColumn(name, F.greatest(F.col(name), F.col(f"_new_{name}")))
        both = [F.coalesce(c, no_vaccines) for c in ("vaccines_received", "_new_vaccines_received")]
        changes = frame.withColumn("vaccines_received", F.array_sort(F.array_union(*both)))
    sums = [
        F.coalesce(F.col(name), F.lit(0)).cast(MONEY_SUM_TYPE if name in _MONEY_SUMS else "bigint").alias(name)
        for name in _WINDOW_SUMS
    ]
    vaccines = F.coalesce("vaccines_received", no_vaccines).alias("vaccines_received")
    return changes.select("member_key", *sums, *_WINDOW_LATEST, vaccines)


def advance_member_window(
    window: DataFrame | None,
    records: WindowRecords,
    previous: date | None,
    as_of: date,
    days: int = CLAIM_HISTORY_DAYS,
) -> DataFrame:
    """The member window ending `as_of` from the one ending `previous` (None: built from every record received
    by `as_of`). Only the records received after `previous` are added and only those whose service (fill) day
    left the window are subtracted; silver guarantees a record is received no earlier than that day, so a
    day's records are all inside the window ending on it or older than it, and Delta's per-file statistics on
    the day let the engine read only the files that can hold the days leaving."""
    start, end = F.date_sub(F.lit(as_of), days), F.lit(as_of)
    lines = _received(records.claim_lines, previous, as_of)
    lines = lines.where(_between("service_start_date", start, end))
    fills = _received(records.rx_fills, previous, as_of).where(_between("fill_date", start, end))
    expired_lines = expired_fills = None
    if window is not None:
        if previous is None:
            raise ValueError("advancing a member window needs the day it ends")
        before = F.date_sub(F.lit(previous), days)
        expired_lines = _received(records.claim_lines, None, previous).where(
            _between("service_start_date", before, start)
        )
        expired_fills = _received(records.rx_fills, None, previous).where(_between("fill_date", before, start))
    shots = _received(records.immunizations, previous, as_of).where(F.col("administered_date") <= end)
    changes = (
        _signed_changes(lines, expired_lines, _CLAIM_SUMS, _DX_LAST, "service_start_date")
        .join(_provider_changes(records.claim_lines, lines, expired_lines, previous, as_of, days), "member_key", "full")
        .join(_signed_changes(fills, expired_fills, _RX_SUMS, _RX_LAST, "fill_date"), "member_key", "full")
        .join(_immunization_changes(shots), "member_key", "full")
    )
    return _with_changes(window, changes).withColumn("as_of_date", F.lit(as_of).cast("date"))


def member_features(
    members: DataFrame, claims: DataFrame, rx: DataFrame, immunizations: DataFrame, as_of: date
) -> DataFrame:
    """The member features from silver claims, pharmacy claims and immunizations received by `as_of`."""
    records = WindowRecords(member_claims_daily(claims), member_rx_daily(rx), immunizations)
    return member_features_from_window(members, advance_member_window(None, records, None, as_of), as_of)


def member_features_from_window(
    members: DataFrame, window: DataFrame, as_of: date, days: int = CLAIM_HISTORY_DAYS
) -> DataFrame:
    """One row per member (current version): demographics, risk factors, 12-month utilisation and cost,
    chronic-condition flags from diagnoses and maintenance drugs, immunization history."""
    start = F.date_sub(F.lit(as_of), days)
    in_window = lambda last: (F.col(last) > start).cast("int")  # noqa: E731
    claims_used = window.select(
        "member_key",
        *_CLAIM_SUMS,
        "num_distinct_providers",
        *[in_window(last).alias(f"_{flag}") for last, flag in _DX_LAST.items()],
    )
    rx_used = window.select(
        "member_key", *_RX_SUMS, *[in_window(last).alias(f"_{flag}") for last, flag in _RX_LAST.items()]
    )
    shots = window.where("num_immunizations > 0").select(
        "member_key", "num_immunizations", "last_flu_vaccine_date", "vaccines_received"
    )
    return with_utilisation(members, claims_used, rx_used, shots, as_of)


def with_utilisation(
    members: DataFrame, claims_used: DataFrame, rx_used: DataFrame, immunization_history: DataFrame, as_of: date
) -> DataFrame:
    """The current members with their per-member claim and pharmacy utilisation of the window, immunizations and
    derived flags, in the table's column order."""
    current = members.where("is_current_record").select(
        "member_key", "gender", "birth_year", "geographic_region", "plan_code", "bmi", "smoker", "enrollment_status"
    )
    frame = (
        current.join(claims_used, "member_key", "left")
        .join(rx_used, "member_key", "left")
        .join(immunization_history, "member_key", "left")
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
