"""Spark side of the fairness monitoring: a model's shipped flags with the claims' protected attributes and,
on labelled days, whether each claim is a known fraud."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from healthcare_assets.domain.features import PROTECTED_ATTRIBUTES
from healthcare_assets.domain.sources import FRAUD_LABELS_FOLDER
from healthcare_assets.resources.delta import PARTITION_COLUMN

FLAG_COLUMN = "is_flagged_p95"  # the flag investigators work from
FRAUD_LABEL_SCHEMA = "claim_id STRING, fraud_pattern STRING"


def labelled_days(landing_root: str, days: list[date]) -> list[date]:
    """The days whose fraud-label file has landed (on a remote root every day counts: its reader reports a gap)."""
    root = landing_root.rstrip("/")
    return [
        day
        for day in days
        if "://" in root or any(Path(f"{root}/{FRAUD_LABELS_FOLDER}/{day.isoformat()}").glob("*.csv"))
    ]


def known_frauds(spark: SparkSession, landing_root: str, days: list[date]) -> DataFrame:
    """claim_id of every claim labelled fraud on `days` (the generator's labels, an investigator's outcomes)."""
    root = landing_root.rstrip("/")
    folders = [f"{root}/{FRAUD_LABELS_FOLDER}/{day.isoformat()}" for day in days]
    return spark.read.option("header", "true").schema(FRAUD_LABEL_SCHEMA).csv(folders).select("claim_id").distinct()


def flags_with_groups(
    scores: DataFrame, claim_groups: DataFrame, frauds: DataFrame | None, labelled: list[date]
) -> DataFrame:
    """Per scored claim: day, model version, the shipped flag, the protected attributes and `is_fraud` (null on a
    day without labels). No identifier is selected."""
    joined = scores.join(
        claim_groups.select("claim_id", PARTITION_COLUMN, *PROTECTED_ATTRIBUTES), ["claim_id", PARTITION_COLUMN]
    )
    if frauds is None or not labelled:
        is_fraud = F.lit(None).cast("boolean")
    else:
        joined = joined.join(frauds.withColumn("labelled_fraud", F.lit(True)), "claim_id", "left")
        is_fraud = F.when(F.col(PARTITION_COLUMN).isin(labelled), F.coalesce("labelled_fraud", F.lit(False)))
    return joined.select(
        PARTITION_COLUMN, "model_version", FLAG_COLUMN, *PROTECTED_ATTRIBUTES, is_fraud.alias("is_fraud")
    )
