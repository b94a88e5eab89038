"""Batch scoring of claim features inside Spark: the model travels in the function closure, rows never
leave the engine (Spark Connect has no SparkContext broadcast)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder
from healthcare_assets.domain.autoencoder_pyfunc import score_frame
from healthcare_assets.resources.delta import PARTITION_COLUMN

KEY_COLUMNS = ("claim_id", "member_key", "claim_date")
SCORE_SCHEMA = (
    "claim_id string, member_key string, claim_date date, fraud_score double, score_percentile double, "
    "is_flagged_p95 boolean, is_flagged_p99 boolean, top_features string, model_version string, "
    f"{PARTITION_COLUMN} date"
)
# whether the model learnt from claims of the row's day: only the other days are scored forward
TRAINING_WINDOW_COLUMN = "in_training_window"
_BATCH_COLUMNS = [column.split()[0] for column in SCORE_SCHEMA.split(", ")]
SCORE_COLUMNS = [*_BATCH_COLUMNS, TRAINING_WINDOW_COLUMN]


def fraud_scores(features: DataFrame, model: ClaimsTreeAutoencoder, model_version: str) -> DataFrame:
    """One row per claim of `features`: score, calibration percentile, p95/p99 flags, top features, model version,
    and whether the claim's day lies in the days the model learnt from."""

    def score_batches(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if batch.empty:  # Sail can hand over empty batches
                continue
            scored = score_frame(model, batch[model.features])
            keys = batch[list(KEY_COLUMNS)].reset_index(drop=True)
            frame = pd.concat([keys, scored.reset_index(drop=True)], axis=1)
            frame["model_version"] = model_version
            frame[PARTITION_COLUMN] = batch[PARTITION_COLUMN].to_numpy()
            yield frame[_BATCH_COLUMNS]

    scored = features.select(*KEY_COLUMNS, PARTITION_COLUMN, *model.features).mapInPandas(score_batches, SCORE_SCHEMA)
    if model.training_days is None:  # a model saved before it recorded its days
        in_window = F.lit(False)
    else:
        in_window = F.col(PARTITION_COLUMN).between(F.lit(model.training_days[0]), F.lit(model.training_days[1]))
    return scored.withColumn(TRAINING_WINDOW_COLUMN, in_window).select(*SCORE_COLUMNS)


@dataclass(frozen=True)
class DayFlagCounts:
    claims: int
    flagged_p95: int
    in_training_window: bool

    @property
    def claims_and_flagged(self) -> tuple[int, int]:
        return self.claims, self.flagged_p95


def daily_flag_counts(scores: DataFrame) -> dict[date, DayFlagCounts]:
    """Per scored day: claims, p95 flags and whether the scoring model learnt from that day (one aggregation)."""
    rows = (
        scores.groupBy(PARTITION_COLUMN)
        .agg(
            F.count(F.lit(1)).alias("claims"),
            F.sum(F.col("is_flagged_p95").cast("long")).alias("flagged"),
            F.max(F.col(TRAINING_WINDOW_COLUMN).cast("int")).alias("in_window"),
        )
        .collect()
    )
    return {
        row[PARTITION_COLUMN]: DayFlagCounts(int(row["claims"]), int(row["flagged"] or 0), bool(row["in_window"]))
        for row in rows
    }


@dataclass(frozen=True)
class ScoreHistogram:
    """Bin counts of fraud scores on [0, edges[-1]), the scores above it, NaN/infinite ones, and flag counts."""

    edges: list[float]
    counts: list[int]
    overflow: int
    non_finite: int
    flagged_p95: int
    flagged_p99: int

    @property
    def total(self) -> int:
        return sum(self.counts) + self.overflow + self.non_finite


def score_histogram(scores: DataFrame, upper: float, bins: int) -> ScoreHistogram:
    """Histogram of `fraud_score` (>= 0) over `bins` equal bins up to `upper`, in one Spark aggregation."""
    if upper <= 0 or bins < 1:
        raise ValueError(f"a score histogram needs upper > 0 and at least one bin, got {upper} and {bins}")
    score = F.col("fraud_score")
    finite = score.isNotNull() & ~F.isnan(score) & (F.abs(score) != float("inf"))
    # bin `bins` collects the scores from `upper` up; -1 the NaN and infinite ones
    index = (
        F.when(~finite, F.lit(-1))
        .when(score >= upper, F.lit(bins))
        .otherwise(F.least(F.greatest(F.floor(score / F.lit(upper / bins)), F.lit(0)), F.lit(bins - 1)))
    )
    rows = (
        scores.groupBy(index.cast("int").alias("bin"))
        .agg(
            F.count(F.lit(1)).alias("claims"),
            F.sum(F.col("is_flagged_p95").cast("long")).alias("p95"),
            F.sum(F.col("is_flagged_p99").cast("long")).alias("p99"),
        )
        .collect()
    )
    claims = {row["bin"]: row["claims"] for row in rows}
    return ScoreHistogram(
        edges=[upper * position / bins for position in range(bins + 1)],
        counts=[claims.get(position, 0) for position in range(bins)],
        overflow=claims.get(bins, 0),
        non_finite=claims.get(-1, 0),
        flagged_p95=sum(row["p95"] or 0 for row in rows),
        flagged_p99=sum(row["p99"] or 0 for row in rows),
    )
