"""The chart helpers draw what they are given (curves, bins, bars, threshold lines) and embed it as a PNG;
the chart inputs the assets compute are aggregates whose size does not grow with the records."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from assets_tests.embedded_charts import embedded_chart
from healthcare_assets import charts
from healthcare_assets.domain.fraud_evaluation import CURVE_POINTS, pr_points, roc_points
from healthcare_assets.transforms.scoring import score_histogram


def _legend(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def _bars(figure) -> list[list[float]]:
    """Heights of every bar series drawn, in drawing order."""
    containers = [c for c in figure.axes[0].containers if isinstance(c, BarContainer)]
    return [[patch.get_height() for patch in container] for container in containers]


def test_curve_chart_draws_one_line_per_curve_plus_the_chance_line_and_reference_lines():
    curves = {"catboost": ([0, 0.2, 1], [0, 0.7, 1]), "xgboost": ([0, 0.5, 1], [0, 0.6, 1]), "if": ([0, 1], [0, 1])}
    figure = charts.curve_figure(curves, "ROC", "FPR", "TPR", diagonal=True, limits={"fraud share": 0.1})
    axes = figure.axes[0]
    assert len(axes.lines) == 3 + 1 + 1
    assert _legend(figure) == ["catboost", "xgboost", "if", "chance", "fraud share"]
    assert [list(line.get_ydata()) for line in axes.lines[:3]] == [[0, 0.7, 1], [0, 0.6, 1], [0, 1]]
    assert list(axes.lines[-1].get_ydata()) == [0.1, 0.1]  # the horizontal reference line
    value = charts.figure_markdown(charts.curve_figure(curves, "ROC", "FPR", "TPR", diagonal=True))
    assert embedded_chart(value) == ("ROC", (800, 350))


def test_histogram_draws_every_bin_the_tail_bar_and_a_vertical_line_per_threshold():
    edges, counts = [0.0, 0.5, 1.0, 1.5, 2.0], [40, 25, 8, 2]
    figure = charts.histogram_figure(edges, counts, "scores", "score", limits={"p95": 0.9, "p99": 1.6}, overflow=3)
    bins, tail = _bars(figure)
    assert bins == counts and tail == [3]
    axes = figure.axes[0]
    assert [line.get_xdata()[0] for line in axes.lines] == [0.9, 1.6]
    assert _legend(figure) == ["p95", "p99", "> 2"]
    value = charts.figure_markdown(charts.histogram_figure(edges, counts, "Scores", "score", limits={"p95": 0.9}))
    assert embedded_chart(value) == ("Scores", (800, 350))
    with pytest.raises(ValueError, match="one more edge than counts"):
        charts.histogram_figure(edges, [1, 2], "scores", "score")


def test_bars_with_limits_cap_extreme_values_and_draw_the_lines_and_the_band():
    psi = {"claim_amount": 0.05, "claim_type": 0.15, "patient_region": 4.0}
    figure = charts.bars_figure(psi, "PSI", "PSI", limits={"WARN": 0.1, "ERROR": 0.2}, cap=1.0)
    assert _bars(figure) == [[0.05, 0.15, 1.0]]
    assert [line.get_ydata()[0] for line in figure.axes[0].lines] == [0.1, 0.2]
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == list(psi)

    di = {"gender=F": {"catboost": 0.7, "xgboost": 1.1}, "region=North": {"catboost": 1.0}}
    figure = charts.bars_figure(di, "DI", "DI", band=("fair band", 0.8, 1.25), cap=3.0)
    assert _bars(figure) == [[0.7, 1.0], [1.1, 0]]  # a group a model has no value for draws no bar
    (band,) = [patch for patch in figure.axes[0].patches if patch.get_label() == "fair band"]
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((0.8, 1.25))
    assert _legend(figure) == ["fair band", "catboost", "xgboost"]
    value = charts.figure_markdown(
        charts.bars_figure(psi, "PSI per feature", "PSI", limits={"WARN": 0.1}, size=charts.WIDE)
    )
    assert embedded_chart(value) == ("PSI per feature", (800, 350))


def test_cut_off_and_undefined_bars_are_marked_not_drawn_silently():
    di = {"age_group=65+": {"catboost": 4.5, "xgboost": 1.1}, "gender=U": {"catboost": None, "xgboost": 0.9}}
    figure = charts.bars_figure(di, "DI", "DI", band=("fair band", 0.8, 1.25), cap=3.0)
    axes = figure.axes[0]
    containers = [c for c in axes.containers if isinstance(c, BarContainer)]
    catboost = containers[0].patches
    assert catboost[0].get_height() == 3.0 and catboost[0].get_hatch() == "//"  # cut off at the cap, hatched
    assert not catboost[1].get_fill() and catboost[1].get_hatch() == "//"  # undefined: an empty outline
    assert [text.get_text() for text in axes.texts] == ["4.5", "undefined"]
    assert axes.get_ylim()[1] > 3.0  # room for the label above the cut-off bar
    assert [patch.get_hatch() for patch in containers[1].patches] == [None, None]  # in range: plain bars
    plain = charts.bars_figure({"a": 0.05, "b": 0.1}, "PSI", "PSI", cap=1.0)
    assert len(plain.axes[0].texts) == 0 and plain.axes[0].get_ylim()[1] < 1.0  # nothing cut off: no forced scale


def test_curve_points_are_thinned_rates_whatever_the_number_of_claims():
    rng = np.random.default_rng(3)
    labels = rng.random(20_000) < 0.05
    scores = rng.normal(size=labels.size) + labels * 1.5
    for x, y in (roc_points(labels, scores), pr_points(labels, scores)):
        assert 100 < len(x) == len(y) <= CURVE_POINTS
        assert all(0.0 <= v <= 1.0 for v in (*x, *y))  # rates only: nothing per claim
    fpr, tpr = roc_points(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert fpr == sorted(fpr) and tpr == sorted(tpr)
    recall, precision = pr_points(labels, scores)
    assert recall[0] == 1.0 and recall[-1] == 0.0 and precision[-1] == 1.0
    assert precision[0] == pytest.approx(labels.mean(), abs=1e-4)  # everything flagged: the fraud share


def test_score_histogram_counts_bins_tail_non_finite_and_flags_in_spark(spark):
    scores = [0.0, 0.1, 0.49, 0.5, 0.99, 1.0, 1.9999999, 2.0, 7.5, math.nan]
    frame = pd.DataFrame(
        {
            "claim_id": [f"c{i}" for i in range(len(scores))],
            "fraud_score": scores,
            "is_flagged_p95": [s > 0.9 for s in scores],
            "is_flagged_p99": [s > 1.5 for s in scores],
        }
    )
    histogram = score_histogram(spark.createDataFrame(frame), upper=2.0, bins=4)
    assert histogram.edges == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert histogram.counts == [3, 2, 1, 1]  # [0, .5) [.5, 1) [1, 1.5) [1.5, 2)
    assert (histogram.overflow, histogram.non_finite, histogram.total) == (2, 1, len(scores))
    assert (histogram.flagged_p95, histogram.flagged_p99) == (5, 3)
    with pytest.raises(ValueError, match="upper > 0"):
        score_histogram(spark.createDataFrame(frame), upper=0.0, bins=4)


def test_bars_set_apart_are_grey_hatched_starred_and_explained_once_in_the_legend():
    psi = {"claim_amount": 0.05, "num_previous_claims": 1.0, "days_since_last_claim": 0.9}
    apart = {"num_previous_claims", "days_since_last_claim"}
    figure = charts.bars_figure(psi, "PSI", "PSI", limits={"ERROR 0.2": 0.2}, set_apart=("not gated", apart))
    (bars,) = [c for c in figure.axes[0].containers if isinstance(c, BarContainer)]
    hatched = [patch.get_hatch() == "//" for patch in bars]
    assert hatched == [False, True, True]
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == [
        "claim_amount",
        "num_previous_claims *",
        "days_since_last_claim *",
    ]
    assert _legend(figure) == ["* not gated", "ERROR 0.2"]
