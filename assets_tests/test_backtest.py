"""The walk-forward backtest on a small lakehouse: every forward day is scored by detectors trained before it, on
the retraining schedule, the autoencoders beside the IsolationForest and the SIU rules; the report renders it."""

import json
from datetime import date, timedelta

import pytest

from benchmarks.backtest import DETECTORS, BacktestConfig, backtest_section, build_lakehouse, walk_forward
from benchmarks.scales import Scale

# 12 days of 150 claims; 6 days of history, then retraining every 3 days with one day held out
SCALE = Scale("test", 12, 400, 40, 150, 40, 10)
CONFIG = BacktestConfig(initial_days=6, retrain_every=3, training={"holdout_days": 1, "iterations": 20, "depth": 3})


def _day(number: int) -> str:
    return (date(2026, 1, 1) + timedelta(days=number - 1)).isoformat()


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    lakehouse = build_lakehouse(SCALE, tmp_path_factory.mktemp("backtest"), progress=lambda message: None)
    return walk_forward(lakehouse, CONFIG, progress=lambda message: None)


def test_every_forward_day_is_scored_by_detectors_trained_before_it(backtest):
    assert backtest["forward_days"] == 6 and [d["day"] for d in backtest["days"]] == [_day(n) for n in range(7, 13)]
    retrains = backtest["retrains"]
    assert [r["retrain_day"] for r in retrains] == [_day(7), _day(10)]
    # the morning of day 7 holds days 1-6; day 6 is held out, so the models learnt from days 1-5 only
    assert [(r["first_training_day"], r["last_training_day"]) for r in retrains] == [
        (_day(1), _day(5)),
        (_day(1), _day(8)),
    ]
    trained_through = {d["day"]: d["trained_through"] for d in backtest["days"]}
    assert all(through < day for day, through in trained_through.items())
    assert trained_through[_day(9)] == _day(5) and trained_through[_day(10)] == _day(8)
    for retrain in retrains:
        for model_type in ("catboost", "xgboost"):
            [held_out] = retrain["held_out_flag_rates"][model_type]  # the model gate's day
            last_trained = date.fromisoformat(retrain["last_training_day"])
            assert held_out["day"] == (last_trained + timedelta(days=1)).isoformat()


def test_each_day_and_the_whole_span_report_every_detector(backtest):
    for day in backtest["days"]:
        assert day["claims"] > 100
        for name in DETECTORS:
            assert 0.0 <= day[name]["flag_rate"] <= 1.0 and isinstance(day[name]["within_band"], bool)
    assert backtest["forward_claims"] == sum(day["claims"] for day in backtest["days"])
    assert backtest["forward_frauds"] > 10
    for name in DETECTORS:
        summary = backtest["detectors"][name]
        assert 0.0 <= summary["roc_auc"] <= 1.0 and 0.0 <= summary["pr_auc"] <= 1.0
        assert summary["days_out_of_band"] == sum(not day[name]["within_band"] for day in backtest["days"])
        assert summary["flag_rate_min"] <= summary["flag_rate_mean"] <= summary["flag_rate_max"]
        assert set(summary["recall_by_pattern"]) <= {"upcoding", "duplicate_billing", "phantom_provider", "unbundling"}
    # the rules were written for the injected schemes: they rank the labelled claims almost perfectly
    assert backtest["detectors"]["siu_rules"]["roc_auc"] > 0.9


def test_the_report_section_lists_every_detector_and_retraining(backtest, tmp_path):
    (tmp_path / "backtest_test.json").write_text(json.dumps(backtest))
    lines, data = backtest_section(tmp_path, ("test",))
    markdown = "\n".join(lines)
    assert data == {"test": backtest}
    assert "### test: 6 forward days from 2026-01-07" in markdown
    for name in ("CatBoost autoencoder", "XGBoost autoencoder", "IsolationForest", "SIU rules (any of 4)"):
        assert f"| {name} | " in markdown
    assert f"| {_day(7)} | {_day(1)}..{_day(5)} |" in markdown and f"| {_day(10)} | {_day(1)}..{_day(8)} |" in markdown
    assert "the four SIU rules reach" in markdown
    empty, _ = backtest_section(tmp_path / "nothing", ("test",))
    assert "not yet measured" in "\n".join(empty)
