"""Per-bin counts for PSI, aggregated in Spark: only quantiles and (day, feature, bin) counts reach the driver."""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from functools import reduce

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from healthcare_assets.domain.drift import MISSING, quantile_levels
from healthcare_assets.resources.delta import PARTITION_COLUMN

_SEPARATOR = "\x1f"  # the ASCII unit separator: never part of a feature name or category
BinCounts = dict[str, dict[str | int, int]]  # feature -> bin key -> rows


def reference_edges(reference: DataFrame, numeric_features: Sequence[str], bins: int) -> dict[str, list[float]]:
    """Inner bin edges per numeric feature: the reference window's exact quantiles, duplicates removed (none for a
    feature without values)."""
    if not numeric_features:
        return {}
    levels = quantile_levels(bins)
    row = reference.agg(*[F.percentile(F.col(f).cast("double"), levels).alias(f) for f in numeric_features]).first()
    edges = {}
    for feature in numeric_features:
        values = [v for v in (row[feature] or []) if v is not None] if row is not None else []
        # no values at all: one bin for every value plus the missing bin, so PSI tracks the missing share
        edges[feature] = np.unique(np.asarray(values, dtype=float)).tolist()
    return edges


def _numeric_bin(column: Column, edges: Sequence[float]) -> Column:
    # right-closed bins (e_{i-1}, e_i]: the bin index is the number of inner edges below the value
    index = reduce(lambda total, edge: total + (column > F.lit(edge)).cast("int"), edges, F.lit(0))
    return F.when(column.isNull(), F.lit(MISSING)).otherwise(index.cast("string"))


def bin_counts(
    frame: DataFrame, edges: Mapping[str, Sequence[float]], categorical_features: Sequence[str], by_day: bool
) -> dict[date | None, BinCounts]:
    """Rows per bin of every feature, per day (`by_day`) or over the whole frame (key None), in one Spark job."""
    labels = {f: _numeric_bin(F.col(f).cast("double"), e) for f, e in edges.items()}
    labels |= {f: F.coalesce(F.col(f).cast("string"), F.lit(MISSING)) for f in categorical_features}
    # one "feature<SEP>bin" string per feature and row, exploded and counted in one job; plain strings, because
    # Sail rejects an array of structs whose fields differ in nullability
    pairs = F.array(*[F.concat_ws(_SEPARATOR, F.lit(f), label) for f, label in labels.items()])
    keys = [PARTITION_COLUMN] if by_day else []
    stacked = frame.select(*keys, F.explode(pairs).alias("feature_bin"))
    counts: dict[date | None, BinCounts] = defaultdict(lambda: defaultdict(dict))
    for row in stacked.groupBy(*keys, "feature_bin").count().collect():
        day = row[PARTITION_COLUMN] if by_day else None
        feature, key = row["feature_bin"].split(_SEPARATOR, 1)
        counts[day][feature][int(key) if feature in edges and key != MISSING else key] = int(row["count"])
    return {day: dict(per_feature) for day, per_feature in counts.items()}
