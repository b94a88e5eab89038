"""PSI from Spark-aggregated bin counts equals the pandas reference implementation; drift summary rows."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from healthcare_assets.assets.monitoring import PerformanceConfig, drift_summary_rows
from healthcare_assets.domain import drift
from healthcare_assets.transforms.drift import bin_counts, reference_edges

DAY0 = date(2026, 1, 1)


def _frame(rng: np.random.Generator, day: date, n: int, shift: float) -> pd.DataFrame:
    amount = rng.lognormal(5 + shift, 1.0, n).round(2)
    amount[rng.random(n) < 0.05] = np.nan  # some missing values
    stay = rng.integers(0, 4, n).astype(float)  # few distinct values: duplicate quantile edges
    region = rng.choice(["North", "South", "East", "West"], n, p=[0.4 - shift / 4, 0.3, 0.2, 0.1 + shift / 4])
    region = np.where(rng.random(n) < 0.03, None, region)
    if shift:
        region[:5] = "Offshore"  # a category the reference never saw
    return pd.DataFrame({"ingest_date": day, "amount": amount, "stay": stay, "region": region})


def test_spark_bin_counts_give_the_same_psi_as_the_pandas_implementation(spark):
    rng = np.random.default_rng(7)
    reference = pd.concat([_frame(rng, DAY0 + timedelta(days=i), 400, 0.0) for i in range(3)], ignore_index=True)
    current = pd.concat(
        [_frame(rng, DAY0 + timedelta(days=3), 300, 0.0), _frame(rng, DAY0 + timedelta(days=4), 300, 0.6)],
        ignore_index=True,
    )
    ref_frame, cur_frame = spark.createDataFrame(reference), spark.createDataFrame(current)

    edges = reference_edges(ref_frame, ["amount", "stay"], bins=10)
    [ref_counts] = bin_counts(ref_frame, edges, ["region"], by_day=False).values()
    cur_counts = bin_counts(cur_frame, edges, ["region"], by_day=True)

    assert sorted(cur_counts) == [DAY0 + timedelta(days=3), DAY0 + timedelta(days=4)]
    for day, day_counts in cur_counts.items():
        day_rows = current[current["ingest_date"] == day]
        for feature, kind in [("amount", "numeric"), ("stay", "numeric"), ("region", "categorical")]:
            from_spark = drift.feature_psi_from_counts(
                feature, kind, ref_counts[feature], day_counts[feature], edges=edges.get(feature)
            )
            expected = drift.feature_psi(reference[feature], day_rows[feature], feature=feature, kind=kind)
            assert from_spark.bins == expected.bins
            assert from_spark.reference_counts == expected.reference_counts
            assert from_spark.current_counts == expected.current_counts
            assert from_spark.psi == pytest.approx(expected.psi, rel=1e-12)
    shifted = drift.feature_psi_from_counts(
        "amount", "numeric", ref_counts["amount"], cur_counts[DAY0 + timedelta(days=4)]["amount"], edges=edges["amount"]
    )
    assert shifted.status == drift.ERROR
    assert len(edges["stay"]) < 9  # duplicate quantiles dropped


def test_a_feature_without_reference_values_gets_one_bin_and_tracks_the_missing_share(spark):
    reference = spark.createDataFrame(pd.DataFrame({"ingest_date": DAY0, "amount": [None] * 4}, dtype=object))
    reference = reference.selectExpr("ingest_date", "CAST(amount AS double) AS amount")
    edges = reference_edges(reference, ["amount"], bins=10)
    assert edges == {"amount": []}
    [ref_counts] = bin_counts(reference, edges, [], by_day=False).values()
    current = {0: 3, drift.MISSING: 1}
    result = drift.feature_psi_from_counts("amount", "numeric", ref_counts["amount"], current, edges=[])
    assert result.bins == ("(-inf, inf]", drift.MISSING) and result.reference_counts == (0, 4)
    assert result.status == drift.ERROR  # values appeared where the reference had none


def _psi_rows(day: date, model_psis: list[float], protected_psis: list[float]) -> pd.DataFrame:
    rows = [
        {"ingest_date": day, "feature": f"f{i}", "psi": p, "model_feature": True, "protected_attribute": False}
        for i, p in enumerate(model_psis)
    ]
    rows += [
        {"ingest_date": day, "feature": f"p{i}", "psi": p, "model_feature": i == 0, "protected_attribute": True}
        for i, p in enumerate(protected_psis)
    ]
    # a feature still warming up (not gated) is left out of the composite, however high its PSI
    rows.append({"ingest_date": day, "feature": "h", "psi": 9.0, "model_feature": True, "protected_attribute": False})
    return pd.DataFrame(rows).assign(gated=lambda frame: frame["feature"] != "h")


def test_drift_summary_without_a_performance_metric_reports_zero_performance_drift():
    psi = pd.concat([_psi_rows(DAY0, [0.1, 0.3], [0.05, 0.5]), _psi_rows(DAY0 + timedelta(days=1), [0.0], [0.0])])
    [first, second] = drift_summary_rows(psi, PerformanceConfig())
    day, statistical, demographic, performance, available, metric, score, status, n, worst, worst_psi = first
    assert (day, available, metric, performance) == (DAY0, False, None, 0.0)
    assert statistical == pytest.approx(np.mean([0.1, 0.3, 0.05]))  # model features incl. the protected one
    assert demographic == pytest.approx(0.5)
    assert score == pytest.approx(drift.W_STATISTICAL * statistical + drift.W_DEMOGRAPHIC * 0.5)
    assert (status, n, worst, worst_psi) == (drift.OK, 4, "p1", 0.5)
    assert second[6] == 0.0


def test_drift_summary_with_a_degraded_metric_adds_performance_drift():
    psi = _psi_rows(DAY0, [0.2, 0.2], [0.2])
    config = PerformanceConfig(metric="roc_auc", reference_value=0.9, current_value=0.3)
    [row] = drift_summary_rows(psi, config)
    assert row[3] == pytest.approx(2 / 3) and row[4] is True and row[5] == "roc_auc"
    expected = drift.composite_drift([0.2, 0.2, 0.2], [0.2], 2 / 3)
    assert row[6] == pytest.approx(expected.score) and row[7] == drift.ERROR


def test_a_day_without_gated_features_is_insufficient_data_not_zero_drift():
    psi = _psi_rows(DAY0, [0.5], []).assign(gated=False)
    [row] = drift_summary_rows(psi, PerformanceConfig())
    assert row[7] == drift.INSUFFICIENT_DATA and row[6] is None and row[1] is None
