"""Monitoring: PSI of every claim feature per day against a reference window, and the composite drift score.

PSI is computed from per-bin counts that Spark aggregates (exact reference quantiles for the numeric edges, then
one grouped count per (day, feature, bin)); the table itself is never collected and never sampled.
"""

import json
from datetime import date, timedelta

import dagster as dg
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from healthcare_assets import charts
from healthcare_assets.assets.common import SPARK_DELTA, run_day_range
from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
from healthcare_assets.domain import drift
from healthcare_assets.domain.features import (
    CLAIM_CATEGORICAL_FEATURES,
    CLAIM_HISTORY_FEATURES,
    CLAIM_NUMERIC_FEATURES,
    PROTECTED_ATTRIBUTES,
)
from healthcare_assets.metadata import rounded
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.transforms.drift import bin_counts, reference_edges
from healthcare_assets.transforms.gold import CLAIM_FEATURE_WINDOW_DAYS

PSI_METRICS_KEY = dg.AssetKey(["monitoring", "psi_metrics"])
DRIFT_SUMMARY_KEY = dg.AssetKey(["monitoring", "drift_summary"])
MONITORING_OWNERS = ["team:data-engineering", "team:fraud-ml"]

MODEL_FEATURES = (*CLAIM_NUMERIC_FEATURES, *CLAIM_CATEGORICAL_FEATURES)
# protected attributes that are not model features are monitored too: they feed the demographic drift
MONITORED_CATEGORICAL = (*CLAIM_CATEGORICAL_FEATURES, *(a for a in PROTECTED_ATTRIBUTES if a not in MODEL_FEATURES))
# the first days of history are the period the models train on
DEFAULT_REFERENCE_DAYS = 7
# Features over the member's trailing claim history settle only once the feature window is full (90 days after
# the first claim day): they are reported, but gated (PSI gate, composite score) only once the reference window
# starts a full feature window after the first claim day.
TRAILING_HISTORY_FEATURES = CLAIM_HISTORY_FEATURES
# PSI above this is drawn at it: a grossly shifted feature must not flatten the WARN/ERROR lines
PSI_CHART_CAP = 1.0

PSI_SCHEMA = T.StructType(
    [
        T.StructField(PARTITION_COLUMN, T.DateType()),
        T.StructField("feature", T.StringType()),
        T.StructField("feature_type", T.StringType()),
        T.StructField("model_feature", T.BooleanType()),
        T.StructField("protected_attribute", T.BooleanType()),
        T.StructField("gated", T.BooleanType()),
        T.StructField("psi", T.DoubleType()),
        T.StructField("status", T.StringType()),
        T.StructField("reference_start", T.DateType()),
        T.StructField("reference_end", T.DateType()),
        T.StructField("reference_rows", T.LongType()),
        T.StructField("current_rows", T.LongType()),
        T.StructField("bins", T.StringType()),
    ]
)

SUMMARY_SCHEMA = T.StructType(
    [
        T.StructField(PARTITION_COLUMN, T.DateType()),
        T.StructField("statistical_drift", T.DoubleType()),
        T.StructField("demographic_drift", T.DoubleType()),
        T.StructField("performance_drift", T.DoubleType()),
        T.StructField("performance_available", T.BooleanType()),
        T.StructField("performance_metric", T.StringType()),
        T.StructField("composite_score", T.DoubleType()),
        T.StructField("status", T.StringType()),
        T.StructField("features_monitored", T.LongType()),
        T.StructField("worst_feature", T.StringType()),
        T.StructField("worst_psi", T.DoubleType()),
    ]
)


class PsiConfig(dg.Config):
    reference_start: str | None = None  # yyyy-mm-dd; default: the first day of gold.claim_features
    reference_days: int = DEFAULT_REFERENCE_DAYS
    bins: int = drift.DEFAULT_BINS
    min_gated_rows: int = drift.MIN_GATED_ROWS  # smaller reference or current windows are reported, not gated


def _bins_json(result: drift.FeaturePSI) -> str:
    layout = (
        {"edges": list(result.edges)} if result.edges is not None else {"categories": list(result.categories or ())}
    )
    return json.dumps(
        {
            **layout,
            "labels": list(result.bins),
            "reference_counts": list(result.reference_counts),
            "current_counts": list(result.current_counts),
        }
    )


def _reference_window(first_day: date, config: PsiConfig) -> tuple[date, date]:
    if config.reference_days < 1:
        raise dg.Failure(f"reference_days must be at least 1, got {config.reference_days}")
    start = date.fromisoformat(config.reference_start) if config.reference_start else first_day
    return start, start + timedelta(days=config.reference_days - 1)


def history_features_gated(first_day: date, reference_start: date) -> bool:
    """Whether the trailing-history features are comparable: the reference starts after a full history window."""
    return reference_start >= first_day + timedelta(days=CLAIM_FEATURE_WINDOW_DAYS)


@dg.asset(
    key=PSI_METRICS_KEY,
    deps=[CLAIM_FEATURES_KEY],
    description="PSI of every claim feature (and protected attribute) per day against a reference window "
    f"(default: the first {DEFAULT_REFERENCE_DAYS} days of gold.claim_features), with its status, both row counts "
    "and the bins (edges or categories and counts per bin).",
    group_name="monitoring",
    kinds=SPARK_DELTA,
    owners=MONITORING_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def psi_metrics(context: dg.AssetExecutionContext, config: PsiConfig, lakehouse: LakehouseResource) -> DataFrame:
    storage = lakehouse.storage()
    claims = storage.read(TableRef.from_path(CLAIM_FEATURES_KEY.path))
    first_day = claims.agg(F.min(PARTITION_COLUMN)).collect()[0][0]
    if first_day is None:
        raise dg.Failure("gold.claim_features is empty: materialise at least one day of claims first")
    reference_start, reference_end = _reference_window(first_day, config)
    history_gated = history_features_gated(first_day, reference_start)
    if not history_gated:
        context.log.info(
            f"{', '.join(TRAILING_HISTORY_FEATURES)}: reported but not gated until the reference window starts "
            f"{CLAIM_FEATURE_WINDOW_DAYS} days after the first claim day {first_day}"
        )
    reference = claims.where(F.col(PARTITION_COLUMN).between(F.lit(reference_start), F.lit(reference_end)))
    start, end = run_day_range(context)
    current = claims.where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))

    edges = reference_edges(reference, CLAIM_NUMERIC_FEATURES, config.bins)
    reference_by_window = bin_counts(reference, edges, MONITORED_CATEGORICAL, by_day=False)
    if not reference_by_window:
        raise dg.Failure(
            f"reference window {reference_start}..{reference_end} of gold.claim_features has no rows to compare "
            "against: set reference_start (run config) to a window that has been materialised"
        )
    reference_counts = reference_by_window[None]
    current_counts = bin_counts(current, edges, MONITORED_CATEGORICAL, by_day=True)
    context.log.info(
        f"PSI of {len(edges) + len(MONITORED_CATEGORICAL)} features for {len(current_counts)} day(s) "
        f"vs reference {reference_start}..{reference_end}"
    )

    rows: list[tuple] = []
    worst: dict[date, tuple[str, float]] = {}
    largest_psi: dict[str, float] = {}  # feature -> largest PSI over the run's days (the chart)
    largest_gated_psi: dict[str, float] = {}  # the same over the rows the gates judge
    for day in sorted(d for d in current_counts if d is not None):
        for feature, kind in [*((f, "numeric") for f in edges), *((f, "categorical") for f in MONITORED_CATEGORICAL)]:
            result = drift.feature_psi_from_counts(
                feature, kind, reference_counts[feature], current_counts[day].get(feature, {}), edges=edges.get(feature)
            )
            gated = (history_gated or feature not in TRAILING_HISTORY_FEATURES) and min(
                result.reference_size, result.current_size
            ) >= config.min_gated_rows
            rows.append(
                (
                    day,
                    feature,
                    kind,
                    feature in MODEL_FEATURES,
                    feature in PROTECTED_ATTRIBUTES,
                    gated,
                    result.psi,
                    result.status,
                    reference_start,
                    reference_end,
                    result.reference_size,
                    result.current_size,
                    _bins_json(result),
                )
            )
            largest_psi[feature] = max(largest_psi.get(feature, 0.0), result.psi)
            if gated:
                largest_gated_psi[feature] = max(largest_gated_psi.get(feature, 0.0), result.psi)
            if gated and result.psi > worst.get(day, ("", -1.0))[1]:
                worst[day] = (feature, result.psi)
    ungated = {f for f, psi in largest_psi.items() if largest_gated_psi.get(f, -1.0) < psi}
    missing_days = sorted({start + timedelta(days=i) for i in range((end - start).days + 1)} - set(current_counts))
    if missing_days:
        context.log.warning(f"no claim features for {', '.join(map(str, missing_days))}: no PSI for those days")
    context.add_output_metadata(
        {
            "reference_window": f"{reference_start}..{reference_end}",
            "features": len(edges) + len(MONITORED_CATEGORICAL),
            "max_gated_psi": rounded(max((psi for _, psi in worst.values()), default=0.0)),
            "worst_gated_feature_per_day": dg.MetadataValue.json(
                {str(day): {"feature": f, "psi": round(psi, 4)} for day, (f, psi) in sorted(worst.items())}
            ),
            "days_without_claims": dg.MetadataValue.json([str(d) for d in missing_days]),
            "history_features_gated": history_gated,
            "min_gated_rows": config.min_gated_rows,
            "psi_warn": drift.PSI_WARN,
            "psi_error": drift.PSI_ERROR,
            # features whose largest PSI of the run the gates did not judge: set apart on the chart
            "features_not_gated": dg.MetadataValue.json(sorted(ungated)),
            **({"psi_chart": _psi_chart(largest_psi, ungated)} if largest_psi else {}),
        }
    )
    return storage.spark.createDataFrame(rows, PSI_SCHEMA)


UNGATED_NOTE = "not gated at this value (history still filling or too few rows): the PSI gates ignore it"


def _psi_chart(largest_psi: dict[str, float], ungated: set[str]) -> dg.MarkdownMetadataValue:
    """Largest PSI per feature over the run's days against the WARN and ERROR lines; the `ungated` features (whose
    largest value the gates did not judge, e.g. a trailing-history feature before its history is full) are set
    apart, so a bar above the ERROR line next to a passing gate explains itself."""
    figure = charts.bars_figure(
        largest_psi,
        "Largest PSI per feature over the run's days",
        "PSI",
        limits={f"WARN {drift.PSI_WARN}": drift.PSI_WARN, f"ERROR {drift.PSI_ERROR}": drift.PSI_ERROR},
        cap=PSI_CHART_CAP,
        size=charts.WIDE,
        set_apart=(UNGATED_NOTE, ungated),
    )
    return charts.figure_markdown(figure)


class PerformanceConfig(dg.Config):
    """The primary model metric on the reference window and now, once a model reports one (else 0 drift)."""

    metric: str | None = None  # e.g. "roc_auc", "mae"
    reference_value: float | None = None
    current_value: float | None = None
    higher_is_better: bool = True


def drift_summary_rows(psi: pd.DataFrame, performance: PerformanceConfig) -> list[tuple]:
    """One composite-drift row per day of the PSI metrics (pure: the asset below only reads and writes)."""
    reference, current = performance.reference_value, performance.current_value
    available = performance.metric is not None and reference is not None and current is not None
    degradation = 0.0
    if reference is not None and current is not None and available:
        degradation = drift.relative_degradation(reference, current, performance.higher_is_better)
    rows: list[tuple] = []
    for day, all_psi in psi.groupby(PARTITION_COLUMN, sort=True):
        day_psi = all_psi[all_psi["gated"]]
        model = day_psi[day_psi["model_feature"]]
        if model.empty:  # too few rows that day: reported as such, never scored as "no drift"
            rows.append((day, None, None, None, available, None, None, drift.INSUFFICIENT_DATA, 0, None, None))
            continue
        protected = day_psi[day_psi["protected_attribute"]]
        score = drift.composite_drift(model["psi"].tolist(), protected["psi"].tolist(), degradation)
        worst = day_psi.loc[day_psi["psi"].idxmax()]
        rows.append(
            (
                day,
                score.statistical,
                score.demographic,
                score.performance,
                available,
                performance.metric if available else None,
                score.score,
                score.status,
                len(day_psi),
                str(worst["feature"]),
                float(worst["psi"]),
            )
        )
    return rows


@dg.asset(
    key=DRIFT_SUMMARY_KEY,
    ins={"psi": dg.AssetIn(PSI_METRICS_KEY)},
    description="Composite drift score per day: 0.4 statistical (mean PSI of the model features) + 0.3 demographic "
    "(max PSI of the protected attributes) + 0.3 performance (relative degradation of the primary metric, 0 with "
    "performance_available=false until a model reports one).",
    group_name="monitoring",
    kinds=SPARK_DELTA,
    owners=MONITORING_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def drift_summary(
    context: dg.AssetExecutionContext, config: PerformanceConfig, lakehouse: LakehouseResource, psi: DataFrame
) -> DataFrame:
    # days x features rows: small enough to summarise on the driver
    rows = drift_summary_rows(psi.toPandas(), config)
    if not rows:
        context.log.warning("no PSI metrics for the run's days: no drift summary")
    context.add_output_metadata(
        {
            "max_composite_score": rounded(max((row[6] for row in rows if row[6] is not None), default=0.0)),
            "days_insufficient_data": sum(row[7] == drift.INSUFFICIENT_DATA for row in rows),
            "composite_error": drift.COMPOSITE_ERROR,
            "performance_available": bool(rows and rows[0][4]),
        }
    )
    return lakehouse.storage().spark.createDataFrame(rows, SUMMARY_SCHEMA)
