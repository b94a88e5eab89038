"""What the fraud models learn from and how their flags are judged: the training window before the held-out days,
the seeded sample split by member, the flag-rate band of a day, and the SIU rule baseline."""

from datetime import date, timedelta

import pandas as pd
import pytest

from healthcare_assets.domain.fraud_evaluation import DayFlagRate, day_flag_rates
from healthcare_assets.domain.fraud_rules import RULES, rule_hits, rule_scores
from healthcare_assets.domain.fraud_training import TrainingWindow, training_window
from healthcare_assets.transforms.fraud_training import CALIBRATION_COLUMN, training_sample

D1 = date(2026, 1, 1)


def _days(count: int) -> list[date]:
    return [D1 + timedelta(days=n) for n in range(count)]


def test_the_newest_days_are_held_out_and_the_span_before_them_trains():
    window = training_window(_days(14), holdout_days=3, span_days=60)
    assert window == TrainingWindow(D1, date(2026, 1, 11), date(2026, 1, 12), 11)
    long_history = training_window(_days(365), holdout_days=3, span_days=60)
    assert long_history.last_day == date(2026, 12, 28) and long_history.first_forward_day == date(2026, 12, 29)
    assert long_history.received_days == 60  # a longer history does not grow the window
    assert (long_history.last_day - long_history.first_day).days == 59


def test_missing_days_count_as_not_received_and_too_little_history_fails_clearly():
    days = [d for d in _days(10) if d.day not in (4, 5)]  # two days never arrived
    assert training_window(days, holdout_days=2, span_days=60).received_days == 6
    with pytest.raises(ValueError, match="needs at least one earlier day"):
        training_window(_days(3), holdout_days=3, span_days=60)
    with pytest.raises(ValueError, match="at least 1"):
        training_window(_days(10), holdout_days=0, span_days=60)


def _features(spark, days: int, per_day: int):
    rows = [
        (f"C{day:02d}{n:04d}", f"m{n % 97}", D1 + timedelta(days=day), float(n))
        for day in range(days)
        for n in range(per_day)
    ]
    return spark.createDataFrame(rows, "claim_id string, member_key string, ingest_date date, claim_amount double")


def test_the_sample_spans_every_training_day_is_seeded_and_splits_by_member(spark):
    features = _features(spark, days=10, per_day=300)
    window = training_window(_days(10), holdout_days=2, span_days=60)
    sample = training_sample(features, window, max_rows=800, seed=42, calibration_share=0.25).toPandas()
    assert len(sample) == 800 and sample["claim_id"].is_unique
    per_day = sample.groupby("ingest_date").size()
    assert set(per_day.index) == set(_days(8))  # every training day, never a held-out one
    assert per_day.min() >= 60  # about 100 each: drawn across the window, not from its newest days
    calibration = sample[sample[CALIBRATION_COLUMN]]
    assert set(calibration["member_key"]).isdisjoint(sample.loc[~sample[CALIBRATION_COLUMN], "member_key"])
    assert 0.1 < len(calibration) / len(sample) < 0.4
    again = training_sample(features, window, max_rows=800, seed=42, calibration_share=0.25).toPandas()
    pd.testing.assert_frame_equal(
        sample.sort_values("claim_id").reset_index(drop=True), again.sort_values("claim_id").reset_index(drop=True)
    )
    other_seed = training_sample(features, window, max_rows=800, seed=7, calibration_share=0.25).toPandas()
    assert set(other_seed["claim_id"]) != set(sample["claim_id"])
    with pytest.raises(ValueError, match="calibration_share"):
        training_sample(features, window, max_rows=800, seed=42, calibration_share=1.0)


@pytest.mark.parametrize(
    ("claims", "flagged", "within"),
    [
        (400, 20, True),  # 5 %
        (400, 0, False),  # nothing flagged: thresholds far too high
        (400, 120, False),  # 30 %: thresholds far too low
        (80, 1, True),  # 1.25 % of a small day: within the noise of 5 %
        (11_000, 1_210, False),  # 11 % of a large day: no noise to hide behind
        (11_000, 990, True),  # 9 %
    ],
)
def test_a_day_is_out_of_band_only_beyond_its_sampling_noise(claims, flagged, within):
    rate = DayFlagRate(D1, claims, flagged)
    low, high = rate.interval
    assert low <= rate.rate <= high
    assert rate.within_band is within
    assert DayFlagRate.from_dict(rate.as_dict()) == rate


def test_day_flag_rates_are_oldest_first():
    rates = day_flag_rates({date(2026, 1, 3): (100, 5), D1: (200, 10)})
    assert [r.day for r in rates] == [D1, date(2026, 1, 3)]


def test_each_siu_rule_trips_on_its_scheme_and_not_on_ordinary_claims():
    ordinary = {
        "identical_claims_before": 0,
        "provider_experience_years": 12,
        "lines_same_visit": 1,
        "procedure_code": "99213",
        "diagnosis_code": "J06.9",
    }
    claims = pd.DataFrame(
        [
            ordinary,
            {**ordinary, "identical_claims_before": 1},
            {**ordinary, "provider_experience_years": 1},
            {**ordinary, "lines_same_visit": 6},
            {**ordinary, "procedure_code": "99215"},  # top office E/M for an upper respiratory infection
            {**ordinary, "procedure_code": "99215", "diagnosis_code": "I50.9"},  # heart failure: a fair top level
            {**ordinary, "identical_claims_before": None, "lines_same_visit": None},  # missing is no evidence
            {**ordinary, "provider_experience_years": 0, "lines_same_visit": 5},
        ]
    )
    hits = rule_hits(claims)
    assert list(hits.columns) == list(RULES)
    assert hits.iloc[0].sum() == 0 and hits.iloc[5].sum() == 0 and hits.iloc[6].sum() == 0
    assert [hits.iloc[row][rule] for row, rule in zip(range(1, 5), RULES, strict=True)] == [True] * 4
    assert rule_scores(claims).tolist() == [0, 1, 1, 1, 1, 0, 0, 2]
    with pytest.raises(ValueError, match="lines_same_visit"):
        rule_hits(claims.drop(columns=["lines_same_visit"]))
