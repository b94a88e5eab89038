"""Spark side of the member risk models: the actuarial label feed, batch scoring and the outreach list."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from healthcare_assets.domain import outreach
from healthcare_assets.domain.risk import FEATURE_COLUMNS, RiskModels
from healthcare_assets.domain.synthetic import RISK_SCORES_FOLDER
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms.common import pseudonymise

RISK_LABEL_SCHEMA = "member_id STRING, risk_score DOUBLE, high_risk BOOLEAN, expected_annual_cost DOUBLE"
PREDICTION_SCHEMA = (
    f"member_key STRING, {PARTITION_COLUMN} DATE, risk_score DOUBLE, high_risk_prediction BOOLEAN, "
    "high_risk_score DOUBLE, predicted_total_cost DOUBLE"
)


def risk_labels(spark: SparkSession, landing_root: str, day: date, key: bytes) -> DataFrame:
    """The actuarial risk file delivered on `day`, keyed by member_key (the member id is dropped at once)."""
    folder = f"{landing_root.rstrip('/')}/{RISK_SCORES_FOLDER}/{day.isoformat()}"
    if "://" not in folder and not any(Path(folder).glob("*.csv")):
        raise FileNotFoundError(f"no actuarial risk file for {day} under {RISK_SCORES_FOLDER}/: land it first")
    raw = spark.read.option("header", "true").schema(RISK_LABEL_SCHEMA).csv(folder)
    return raw.select(
        pseudonymise("member_id", key).alias("member_key"), "risk_score", "high_risk", "expected_annual_cost"
    )


def is_test_member(member_key: Column, test_share: float) -> Column:
    """Spark twin of `domain.risk.is_test_member`: the member's key hashes into the held-out share."""
    bucket = F.conv(F.substring(F.sha2(member_key, 256), 1, 8), 16, 10).cast("double") / float(0xFFFFFFFF)
    return bucket < F.lit(test_share)


def model_inputs(features: DataFrame) -> DataFrame:
    """member_key plus the model's feature columns, every number as double: pandas has no decimal, and MLflow
    signatures reject integer columns that may hold nulls."""
    numbers = {
        field.name for field in features.schema.fields if field.dataType.typeName() in ("decimal", "integer", "long")
    }
    return features.select(
        "member_key",
        *[F.col(name).cast("double").alias(name) if name in numbers else F.col(name) for name in FEATURE_COLUMNS],
    )


def score_members(features: DataFrame, models: RiskModels, days: list[date]) -> DataFrame:
    """Every member of `features` scored once per day in `days`, inside Spark.

    The fitted models travel in the mapInPandas closure (Spark Connect has no
    broadcast variables); nothing is collected to the driver.
    """
    day_frame = features.sparkSession.createDataFrame([(day,) for day in days], f"{PARTITION_COLUMN} date")
    rows = model_inputs(features).crossJoin(day_frame)

    def predict(batches):
        for batch in batches:
            if batch.empty:  # Sail hands over empty batches
                continue
            predictions = models.predict(batch)
            yield pd.concat([batch[["member_key", PARTITION_COLUMN]], predictions], axis=1)

    return rows.mapInPandas(predict, PREDICTION_SCHEMA)


OUTREACH_INPUT_COLUMNS = ("member_key", "age", *outreach.CONDITION_FLAGS, "is_smoker")


def outreach_list(features: DataFrame, predictions: DataFrame, immunizations: DataFrame, as_of: date) -> DataFrame:
    """`domain.outreach` rules applied to every current member with their latest prediction; members with no
    vaccine due are left out. One row per member, ordered by rank."""
    last_doses = (
        immunizations.where(F.col("administered_date") <= F.lit(as_of))
        .groupBy("member_key")
        .agg(
            *[
                F.max(F.when(F.col("vaccine_code") == code, F.col("administered_date"))).alias(f"last_{code}")
                for code in outreach.VACCINE_CODES
            ]
        )
    )
    members = (
        features.select(*OUTREACH_INPUT_COLUMNS)
        .join(predictions.select("member_key", "risk_score", "high_risk_prediction"), "member_key")
        .join(last_doses, "member_key", "left")
    )

    def apply_rules(batches):
        for batch in batches:
            if batch.empty:
                continue
            rows = outreach.outreach_rows(batch, as_of)
            if not rows.empty:
                yield rows

    listed = members.mapInPandas(apply_rules, outreach.OUTREACH_SCHEMA)
    # a total order (ties broken by member key) so the ranking is the same on every run
    by_priority = Window.orderBy(F.desc("outreach_priority_score"), F.asc("member_key"))
    return listed.withColumn("outreach_rank", F.row_number().over(by_priority)).withColumn(
        "as_of_date", F.lit(as_of).cast("date")
    )
