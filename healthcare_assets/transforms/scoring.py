"""Batch scoring of claim features inside Spark: the model travels in the function closure, rows never
leave the engine (Spark Connect has no SparkContext broadcast)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql import DataFrame

from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder
from healthcare_assets.domain.autoencoder_pyfunc import score_frame
from healthcare_assets.resources.delta import PARTITION_COLUMN

KEY_COLUMNS = ("claim_id", "member_key", "claim_date")
SCORE_SCHEMA = (
    "claim_id string, member_key string, claim_date date, fraud_score double, score_percentile double, "
    "is_flagged_p95 boolean, is_flagged_p99 boolean, top_features string, model_version string, "
    f"{PARTITION_COLUMN} date"
)

SCORE_COLUMNS = [column.split()[0] for column in SCORE_SCHEMA.split(", ")]


def fraud_scores(features: DataFrame, model: ClaimsTreeAutoencoder, model_version: str) -> DataFrame:
    """One row per claim of `features`: score, training percentile, p95/p99 flags, top features, model version."""

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if batch.empty:  # Sail can hand over empty batches
                continue
            scored = score_frame(model, batch[model.features])
            keys = batch[list(KEY_COLUMNS)].reset_index(drop=True)
            frame = pd.concat([keys, scored.reset_index(drop=True)], axis=1)
            frame["model_version"] = model_version
            frame[PARTITION_COLUMN] = batch[PARTITION_COLUMN].to_numpy()
            yield frame[SCORE_COLUMNS]

    return features.select(*KEY_COLUMNS, PARTITION_COLUMN, *model.features).mapInPandas(score_batches, SCORE_SCHEMA)
