"""Immunization outreach rules on hand-made members, and their application in Spark."""

from datetime import date

import pandas as pd
import pytest

from healthcare_assets.domain import outreach
from healthcare_assets.domain.outreach import Member, prioritise, vaccine_gaps
from healthcare_assets.transforms.risk import outreach_list

JANUARY = date(2026, 1, 14)  # flu season started 2025-08-01, recommended doses were due by 2025-10-31


def member(age: int, conditions=(), smoker: bool = False, **last_doses: date) -> Member:
    return Member(age, frozenset(conditions), smoker, dict(last_doses))


def due(gaps) -> dict[str, bool]:
    return {gap.vaccine: gap.overdue for gap in gaps}


def test_senior_without_records_is_overdue_for_flu_pneumococcal_and_shingles():
    gaps = vaccine_gaps(member(70), JANUARY)
    assert due(gaps) == {"FLU": True, "PNEUMO": True, "SHINGLES": True, "TDAP": False}
    assert [gap.vaccine for gap in gaps] == ["FLU", "PNEUMO", "SHINGLES", "TDAP"]  # schedule order


def test_doses_on_record_close_the_gaps():
    covered = member(
        70, FLU=date(2025, 10, 2), PNEUMO=date(2020, 5, 1), SHINGLES=date(2024, 3, 1), TDAP=date(2019, 6, 1)
    )
    assert vaccine_gaps(covered, JANUARY) == []
    # last season's flu dose and a Tdap older than ten years do not count
    lapsed = member(70, FLU=date(2025, 3, 1), PNEUMO=date(2020, 5, 1), SHINGLES=date(2024, 3, 1), TDAP=date(2014, 1, 1))
    assert due(vaccine_gaps(lapsed, JANUARY)) == {"FLU": True, "TDAP": False}


def test_flu_is_due_before_november_and_overdue_after():
    assert due(vaccine_gaps(member(30, FLU=date(2024, 11, 1), TDAP=date(2020, 1, 1)), date(2025, 9, 15))) == {
        "FLU": False
    }
    assert due(vaccine_gaps(member(30, TDAP=date(2020, 1, 1)), date(2025, 11, 1))) == {"FLU": True}


def test_conditions_and_smoking_make_younger_adults_eligible():
    diabetic = vaccine_gaps(member(30, ["diabetes"], FLU=date(2025, 10, 1), TDAP=date(2022, 1, 1)), JANUARY)
    assert due(diabetic) == {"PNEUMO": False, "HEPB": False}  # condition-based: due, never overdue
    assert "diabetes" in diabetic[0].reason
    smoker = vaccine_gaps(member(40, smoker=True, FLU=date(2025, 10, 1), TDAP=date(2022, 1, 1)), JANUARY)
    assert due(smoker) == {"PNEUMO": False}
    assert "smoking" in smoker[0].reason
    assert vaccine_gaps(member(40, ["depression"], FLU=date(2025, 10, 1), TDAP=date(2022, 1, 1)), JANUARY) == []


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, {}),  # too young for any rule in whole years
        (1, {"FLU": True, "MMR": False}),
        (5, {"FLU": True, "MMR": True}),
        (10, {"FLU": True, "HPV": False}),
        (12, {"FLU": True, "TDAP": True, "HPV": False}),
        (16, {"FLU": True, "HPV": True}),
        (50, {"FLU": True, "SHINGLES": False, "TDAP": False}),
        (65, {"FLU": True, "PNEUMO": False, "SHINGLES": True, "TDAP": False}),
    ],
)
def test_age_rules(age, expected):
    assert due(vaccine_gaps(member(age), JANUARY)) == expected


def test_tiers_and_priority():
    overdue_two = [outreach.Gap("FLU", True, "r"), outreach.Gap("SHINGLES", True, "r")]
    due_one = [outreach.Gap("TDAP", False, "r")]
    assert prioritise(overdue_two, 80.0, True).tier == 1
    assert prioritise(due_one, 80.0, True).tier == 2
    assert prioritise(overdue_two, 20.0, False).tier == 2
    assert prioritise(overdue_two[:1], 20.0, False).tier == 3
    # 0.6 * risk + 0.4 * min(100, 30 per overdue + 10 per due-only)
    assert prioritise(overdue_two + due_one, 50.0, False).priority_score == pytest.approx(0.6 * 50 + 0.4 * 70)
    assert prioritise([outreach.Gap(c, True, "r") for c in "ABCD"], 0.0, False).priority_score == 40.0


def _member_row(key: str, age: int, risk_score: float, high_risk: bool, **flags) -> dict:
    row = {
        "member_key": key,
        "age": age,
        "is_smoker": False,
        "risk_score": risk_score,
        "high_risk_prediction": high_risk,
    }
    row.update({flag: False for flag in outreach.CONDITION_FLAGS})
    row.update({f"has_{name}": value for name, value in flags.items()})
    return row


HAND_MADE = [
    _member_row("a-senior-high-risk", 78, 91.0, True),
    _member_row("b-child", 4, 12.0, False),
    _member_row("c-diabetic", 33, 55.0, False, diabetes=True),
    _member_row("d-covered-teen", 12, 5.0, False),
    _member_row("e-tie-1", 40, 30.0, False),
    _member_row("e-tie-0", 40, 30.0, False),
]
DOSES = [("d-covered-teen", code, date(2025, 10, 1)) for code in ("FLU", "TDAP", "HPV")]


def test_outreach_rows_explain_every_tier():
    frame = pd.DataFrame(HAND_MADE)
    for code in outreach.VACCINE_CODES:
        frame[f"last_{code}"] = [
            next((d for key, c, d in DOSES if key == row and c == code), None) for row in frame["member_key"]
        ]
    rows = outreach.outreach_rows(frame, JANUARY).set_index("member_key")
    assert "d-covered-teen" not in rows.index  # nothing due: not on the list
    senior = rows.loc["a-senior-high-risk"]
    assert senior["outreach_tier"] == 1
    assert senior["reasons"][0] == "predicted high risk (risk score 91.0)"
    assert senior["overdue_vaccines"] == ["FLU", "PNEUMO", "SHINGLES"]
    assert "overdue for FLU, PNEUMO, SHINGLES" in senior["tier_reason"]
    assert rows.loc["b-child", "outreach_tier"] == 2  # FLU and MMR overdue
    assert rows.loc["c-diabetic", "due_vaccines"] == ["FLU", "PNEUMO", "TDAP", "HEPB"]
    for key, row in rows.iterrows():
        vaccine_reasons = [reason for reason in row["reasons"] if not reason.startswith("predicted high risk")]
        assert [reason.split(" ")[0] for reason in vaccine_reasons] == row["due_vaccines"], key


def test_outreach_list_in_spark_is_unique_ranked_and_deterministic(spark):
    features = spark.createDataFrame(
        [{k: v for k, v in row.items() if k not in ("risk_score", "high_risk_prediction")} for row in HAND_MADE]
    )
    predictions = spark.createDataFrame(
        [(row["member_key"], row["risk_score"], row["high_risk_prediction"]) for row in HAND_MADE],
        "member_key string, risk_score double, high_risk_prediction boolean",
    )
    immunizations = spark.createDataFrame(
        [(key, code, day) for key, code, day in DOSES] + [("b-child", "FLU", date(2026, 2, 1))],  # after as-of
        "member_key string, vaccine_code string, administered_date date",
    )
    first = outreach_list(features, predictions, immunizations, JANUARY).orderBy("outreach_rank").toPandas()
    second = outreach_list(features, predictions, immunizations, JANUARY).orderBy("outreach_rank").toPandas()
    pd.testing.assert_frame_equal(first, second)
    assert first["member_key"].is_unique
    assert first["member_key"].tolist() == ["a-senior-high-risk", "c-diabetic", "e-tie-0", "e-tie-1", "b-child"]
    assert first["outreach_rank"].tolist() == [1, 2, 3, 4, 5]
    assert (first["outreach_priority_score"].diff().dropna() <= 0).all()
    assert set(first["as_of_date"]) == {JANUARY}
    assert first.set_index("member_key").loc["b-child", "overdue_vaccines"].tolist() == ["FLU", "MMR"]
