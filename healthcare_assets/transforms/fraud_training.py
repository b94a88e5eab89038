"""The fraud autoencoders' training claims, drawn inside Spark: a seeded sample across the training window, split
by member into claims the per-feature models fit and calibration claims they never see."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from healthcare_assets.domain.fraud_training import TrainingWindow
from healthcare_assets.resources.delta import PARTITION_COLUMN

CALIBRATION_COLUMN = "is_calibration"
_BUCKETS = 10_000


def _draw(seed: int, column: str) -> Column:
    """A seeded hash of the column: the same on every engine and for every partitioning of the data."""
    return F.xxhash64(F.lit(seed), F.col(column))


def training_sample(
    features: DataFrame, window: TrainingWindow, max_rows: int, seed: int, calibration_share: float
) -> DataFrame:
    """At most `max_rows` claims of the window's days, drawn by a seeded hash of the claim id (every day in
    proportion to its volume), with CALIBRATION_COLUMN true for the claims of a `calibration_share` of members:
    all of a member's claims fall on one side, so a visit's lines never sit on both."""
    if max_rows < 1 or not 0.0 < calibration_share < 1.0:
        raise ValueError(
            f"max_rows must be positive and calibration_share in (0, 1), got {max_rows} and {calibration_share}"
        )
    in_window = features.where(F.col(PARTITION_COLUMN).between(F.lit(window.first_day), F.lit(window.last_day)))
    sampled = in_window.orderBy(_draw(seed, "claim_id"), "claim_id").limit(max_rows)
    bucket = F.pmod(_draw(seed + 1, "member_key"), F.lit(_BUCKETS))
    return sampled.withColumn(CALIBRATION_COLUMN, bucket < F.lit(round(calibration_share * _BUCKETS)))


def sampled_frames(
    features: DataFrame, window: TrainingWindow, max_rows: int, seed: int, calibration_share: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`training_sample` in pandas: (claims the models fit, calibration claims), each in day and claim order (Spark's
    order is not stable), so the same table version trains the same models."""
    sample: pd.DataFrame = (
        training_sample(features, window, max_rows, seed, calibration_share)
        .orderBy(PARTITION_COLUMN, "claim_id")
        .toPandas()
    )
    is_calibration = sample.pop(CALIBRATION_COLUMN).astype(bool)
    return sample[~is_calibration].reset_index(drop=True), sample[is_calibration].reset_index(drop=True)
