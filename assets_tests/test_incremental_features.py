"""The window features from the persisted daily aggregates equal a straightforward computation over every
stored claim (the oracle below joins each claim with the claims themselves), on real Delta tables written by
real runs: a backfill of several days, then single days."""

from datetime import date, timedelta

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from assets_tests.pipeline import Pipeline
from healthcare_assets.assets.gold import MEMBER_WINDOW_KEY, WINDOW_AS_OF, WINDOW_UPDATE
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, MERGED_THROUGH
from healthcare_assets.domain.features import CHRONIC_CONDITIONS
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms import gold, silver

D1 = date(2026, 1, 1)
BUSY_DAYS = {"claims_per_day": 400, "num_members": 200, "rx_claims_per_day": 150}


# -- the oracle: every claim against every earlier stored claim ------------------------------------------------
def _oracle_context(claims: DataFrame, history: DataFrame) -> DataFrame:
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
        .where(gold._in_window("h_ingest_date"))
        .groupBy("claim_id")
        .agg(
            F.count("h_claim_id").alias("lines_same_visit"),
            F.sum((gold._received_before() & (F.col("h_procedure_code") == F.col("procedure_code"))).cast("int")).alias(
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
        .where(gold._in_window("h_day"))
        .groupBy("claim_id")
        .agg(F.exp(F.sum("log_sum") / F.sum("n")).alias("_typical_amount"))
    )
    daily_pairs = history.groupBy(
        "diagnosis_code", F.col("procedure_code").alias("h_procedure_code"), F.col(PARTITION_COLUMN).alias("h_day")
    ).agg(F.count("*").alias("n"))
    coding = (
        keys.join(daily_pairs, "diagnosis_code")
        .where(gold._in_window("h_day"))
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


def _oracle_received_days(claims: DataFrame, history: DataFrame) -> DataFrame:
    """Per claim day: how many days of the short and of the whole feature window hold received claims."""
    days = history.select(F.col(PARTITION_COLUMN).alias("h_day")).distinct()
    return (
        claims.select(PARTITION_COLUMN)
        .distinct()
        .crossJoin(days)
        .where(gold._in_window("h_day"))
        .groupBy(PARTITION_COLUMN)
        .agg(
            F.sum(gold._within_days("h_day", gold.SHORT_RATE_DAYS).cast("int")).alias("_short_days"),
            F.count("h_day").alias("history_days"),
        )
    )


def _oracle_history(claims: DataFrame, history: DataFrame) -> DataFrame:
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
        .where(gold._received_before() & gold._in_window("h_ingest_date"))
    )
    aggregated = pairs.groupBy("claim_id").agg(
        F.sum(gold._within_days("h_ingest_date", gold.SHORT_RATE_DAYS).cast("int")).alias("_short_claims"),
        F.count("h_claim_id").alias("_window_claims"),
        F.avg("h_claim_amount").alias("_member_mean_amount"),
        F.max("h_service_start_date").alias("_last_service_date"),
    )
    return gold.history_rates(claims.join(aggregated, "claim_id", "left"), _oracle_received_days(claims, history))


def _oracle_claim_utilisation(claims: DataFrame) -> DataFrame:
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


def _oracle_pharmacy_utilisation(rx: DataFrame) -> DataFrame:
    return rx.groupBy("member_key").agg(
        F.count("rx_claim_id").alias("num_rx_fills"),
        F.sum("rx_amount").alias("total_rx_amount"),
        *[
            F.max(F.when(F.col("drug_class") == drug_class, 1).otherwise(0)).alias(f"_rx_{name}")
            for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
            if drug_class is not None
        ],
    )


def oracle_claim_features(claims: DataFrame, history: DataFrame, members: DataFrame) -> DataFrame:
    return gold.with_demographics(_oracle_context(_oracle_history(claims, history), history), members, None)


def _oracle_immunization_history(immunizations: DataFrame, as_of: date) -> DataFrame:
    given = immunizations.where(F.col("administered_date") <= F.lit(as_of))
    return given.groupBy("member_key").agg(
        F.count("immunization_id").alias("num_immunizations"),
        F.max(F.when(F.col("vaccine_code") == "FLU", F.col("administered_date"))).alias("last_flu_vaccine_date"),
        F.array_sort(F.collect_set("vaccine_code")).alias("vaccines_received"),
    )


def oracle_member_features(
    members: DataFrame,
    claims: DataFrame,
    rx: DataFrame,
    immunizations: DataFrame,
    as_of: date,
    days: int = gold.CLAIM_HISTORY_DAYS,
) -> DataFrame:
    """Every record received by `as_of` whose service (fill) day is in the `days` up to it, summed directly."""
    received = F.col(PARTITION_COLUMN) <= F.lit(as_of)
    start = F.date_sub(F.lit(as_of), days)
    recent_claims = claims.where(received & (F.col("service_start_date") > start))
    recent_rx = rx.where(received & (F.col("fill_date") > start))
    return gold.with_utilisation(
        members,
        _oracle_claim_utilisation(recent_claims),
        _oracle_pharmacy_utilisation(recent_rx),
        _oracle_immunization_history(immunizations.where(received), as_of),
        as_of,
    )


# -- the comparison --------------------------------------------------------------------------------------------


def _rows(frame: DataFrame, key: str) -> list[dict]:
    return [row.asDict(recursive=True) for row in frame.orderBy(key).collect()]


def _assert_identical(stored: DataFrame, expected: DataFrame, key: str) -> None:
    assert stored.schema == expected.schema
    stored_rows, expected_rows = _rows(stored, key), _rows(expected, key)
    assert len(stored_rows) == len(expected_rows) > 0
    different = [(s, e) for s, e in zip(stored_rows, expected_rows, strict=True) if s != e]
    assert not different, different[:3]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return Pipeline(tmp_path_factory.mktemp("incremental"), synthetic=BUSY_DAYS)


def test_window_features_from_daily_aggregates_equal_the_full_history_computation(pipeline, spark):
    read = lambda schema, table: spark.read.format("delta").load(pipeline.table(schema, table))  # noqa: E731
    # a backfill of three days in one run, then one day at a time
    for start, end in ((D1, D1 + timedelta(days=2)), (D1 + timedelta(days=3), None), (D1 + timedelta(days=4), None)):
        assert pipeline.run(start, end, selection=pipeline.medallion_assets()).success
        end = end or start
        claims, members = read("silver", "medical_claims"), read("silver", "dim_members")
        run_claims = claims.where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))
        stored = read("gold", "claim_features").where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))
        _assert_identical(stored, oracle_claim_features(run_claims, claims, members), "claim_id")
        expected = oracle_member_features(
            members, claims, read("silver", "pharmacy_claims"), read("silver", "immunizations"), end
        )
        _assert_identical(read("gold", "member_features"), expected, "member_key")
        # the dimension, merged for the members each run touched, equals a derivation from every record
        derived = silver.dim_members(read("silver", "member_eligibility"))
        assert sorted(members.collect()) == sorted(derived.collect())
        update = pipeline.instance.get_latest_materialization_event(MEMBER_WINDOW_KEY)
        update = update.asset_materialization.metadata[WINDOW_UPDATE].value
        assert update.startswith("rebuilt" if start == D1 else f"advanced from {start - timedelta(days=1)} to {end}")


@pytest.fixture(scope="module")
def five_days(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("five_days"), synthetic=BUSY_DAYS)
    assert pipeline.run(D1, D1 + timedelta(days=4), selection=pipeline.medallion_assets()).success
    return pipeline


def test_a_day_the_member_window_holds_rewritten_rebuilds_it(five_days, spark):
    """After days 1-5, day 4 again: the stored window is rebuilt, and still exact."""
    pipeline = five_days
    read = lambda schema, table: spark.read.format("delta").load(pipeline.table(schema, table))  # noqa: E731
    day4, day5 = D1 + timedelta(days=3), D1 + timedelta(days=4)
    assert pipeline.run(day4, selection=pipeline.medallion_assets()).success
    event = pipeline.instance.get_latest_materialization_event(MEMBER_WINDOW_KEY)
    assert event.asset_materialization.metadata[WINDOW_UPDATE].value.startswith("rebuilt from every record (")
    assert event.asset_materialization.metadata[WINDOW_AS_OF].value == day5.isoformat()
    members = read("silver", "dim_members")
    expected = oracle_member_features(
        members,
        read("silver", "medical_claims"),
        read("silver", "pharmacy_claims"),
        read("silver", "immunizations"),
        day5,
    )
    _assert_identical(read("gold", "member_features"), expected, "member_key")


@pytest.mark.parametrize("steps", [(0, 1, 2, 3, 4), (0, 2, 4)])
def test_the_member_window_advanced_day_by_day_equals_the_direct_sums(five_days, spark, steps):
    """A two-day window, so that records leave it: advanced one day or two days at a time from the stored
    daily aggregates, it gives the features summed directly from silver on every day."""
    pipeline = five_days
    read = lambda schema, table: spark.read.format("delta").load(pipeline.table(schema, table))  # noqa: E731
    records = gold.WindowRecords(
        read("gold", "member_claims_daily"), read("gold", "member_rx_daily"), read("silver", "immunizations")
    )
    claims, rx, shots = (read("silver", table) for table in ("medical_claims", "pharmacy_claims", "immunizations"))
    members = read("silver", "dim_members")
    window, previous, left_the_window = None, None, 0
    for step in steps:
        day = D1 + timedelta(days=step)
        window = gold.advance_member_window(window, records, previous, day, days=2)
        window = window.localCheckpoint()
        expected = oracle_member_features(members, claims, rx, shots, day, days=2)
        _assert_identical(gold.member_features_from_window(members, window, day, days=2), expected, "member_key")
        if previous is not None:  # claims of the earlier window that this one no longer holds
            left_the_window += claims.where(
                (F.col(PARTITION_COLUMN) <= F.lit(previous))
                & F.col("service_start_date").between(
                    F.lit(previous - timedelta(days=1)), F.lit(day - timedelta(days=2))
                )
            ).count()
        previous = day
    assert left_the_window > 0


def test_a_day_the_dimension_missed_is_merged_by_the_next_run(tmp_path, spark):
    pipeline = Pipeline(tmp_path, synthetic={"num_members": 2000})  # enough members for changes every day
    d2, d3 = D1 + timedelta(days=1), D1 + timedelta(days=2)
    up_to_silver = [k for k in pipeline.medallion_assets() if k.path[0] in ("landing", "bronze", "silver")]
    assert pipeline.run(D1, selection=up_to_silver).success
    # day 2's enrolment records arrive, but its dimension step does not run
    assert pipeline.run(d2, selection=[k for k in up_to_silver if k != DIM_MEMBERS_KEY]).success
    day2 = (
        spark.read.format("delta")
        .load(pipeline.table("silver", "member_eligibility"))
        .where(F.col(PARTITION_COLUMN) == F.lit(d2))
    )
    assert day2.count() > 0
    assert pipeline.run(d3, selection=up_to_silver).success
    stored = spark.read.format("delta").load(pipeline.table("silver", "dim_members"))
    eligibility = spark.read.format("delta").load(pipeline.table("silver", "member_eligibility"))
    assert sorted(stored.collect()) == sorted(silver.dim_members(eligibility).collect())
    event = pipeline.instance.get_latest_materialization_event(DIM_MEMBERS_KEY)
    assert event.asset_materialization.metadata[MERGED_THROUGH].value == d3.isoformat()
