"""Immunization outreach rules: which vaccines a member is due or overdue for, and how urgently to reach out.

Pure Python, applied per member (in Spark through mapInPandas). The schedule is
a simplified adult/child schedule in the spirit of the CDC's:

* FLU      everyone aged 1+ (6 months+), once every season; the season starts on
           1 August and doses are recommended by 31 October, so after that a
           member without a dose this season is overdue.
* PNEUMO   once; aged 65+, or 19-64 with diabetes, COPD, asthma, heart failure,
           chronic kidney disease or smoking.
* SHINGLES once (the two-dose series); aged 50+.
* TDAP     adolescents aged 11-12 once; adults 19+ every 10 years.
* HPV      once (the series); aged 9-26, recommended at 11-12.
* HEPB     adults 19-59 with diabetes, once.
* MMR      children aged 1-6, once (the first dose is given at 12-15 months).

"Due" means eligible and no qualifying dose on record (for FLU: this season;
for TDAP adults: in the last 10 years). A due vaccine is "overdue" when the
member has been eligible for more than a year by age (age >= the first eligible
age + 1; ages are whole years), or for FLU after 31 October of the season.
Eligibility through a condition alone (PNEUMO, HEPB) is never called overdue:
the record cannot tell since when the condition exists.

Tiers: 1 = predicted high risk and at least one overdue vaccine; 2 = predicted
high risk, or two or more overdue vaccines; 3 = any other member with a vaccine
due. Priority score (0-100) = 0.6 * risk score + 0.4 * gap score, where the gap
score is min(100, 30 per overdue + 10 per due-but-not-overdue vaccine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd

VACCINE_CODES = ("FLU", "PNEUMO", "SHINGLES", "TDAP", "HPV", "HEPB", "MMR")
PNEUMO_CONDITIONS = ("diabetes", "copd", "asthma", "chf", "ckd")
CONDITION_FLAGS = tuple(f"has_{name}" for name in sorted({*PNEUMO_CONDITIONS, "diabetes"}))
TDAP_INTERVAL_YEARS = 10
RISK_WEIGHT = 0.6
GAP_POINTS_OVERDUE = 30
GAP_POINTS_DUE = 10

OUTREACH_SCHEMA = (
    "member_key STRING, age INT, risk_score DOUBLE, high_risk_prediction BOOLEAN, "
    "due_vaccines ARRAY<STRING>, overdue_vaccines ARRAY<STRING>, gaps_in_care INT, reasons ARRAY<STRING>, "
    "outreach_tier INT, tier_reason STRING, outreach_priority_score DOUBLE"
)


@dataclass(frozen=True)
class Member:
    age: int
    conditions: frozenset[str]
    is_smoker: bool
    last_doses: dict[str, date]  # vaccine code -> latest administered date on record


@dataclass(frozen=True)
class Gap:
    vaccine: str
    overdue: bool
    reason: str


def flu_season_start(as_of: date) -> date:
    year = as_of.year if as_of.month >= 8 else as_of.year - 1
    return date(year, 8, 1)


def _once(code: str, label: str, first_age: int, last_age: int | None, by_age_overdue: bool = True):
    """A once-in-a-lifetime vaccine for an age band: due when none on record, overdue a year into the band."""

    def rule(member: Member, as_of: date) -> Gap | None:
        in_band = member.age >= first_age and (last_age is None or member.age <= last_age)
        if not in_band or code in member.last_doses:
            return None
        overdue = by_age_overdue and member.age >= first_age + 1
        band = f"{first_age}+" if last_age is None else f"{first_age}-{last_age}"
        return Gap(code, overdue, f"{code} {'overdue' if overdue else 'due'}: {label}, aged {band}, none on record")

    return rule


def _flu(member: Member, as_of: date) -> Gap | None:
    season = flu_season_start(as_of)
    last = member.last_doses.get("FLU")
    if member.age < 1 or (last is not None and last >= season):
        return None
    overdue = as_of > date(season.year, 10, 31)
    return Gap("FLU", overdue, f"FLU {'overdue' if overdue else 'due'}: no dose this season (since {season})")


def _pneumo(member: Member, as_of: date) -> Gap | None:
    if "PNEUMO" in member.last_doses:
        return None
    if member.age >= 65:
        return _once("PNEUMO", "pneumococcal", 65, None)(member, as_of)
    causes = [name for name in PNEUMO_CONDITIONS if name in member.conditions]
    if member.is_smoker:
        causes.append("smoking")
    if 19 <= member.age <= 64 and causes:
        return Gap("PNEUMO", False, f"PNEUMO due: aged 19-64 with {', '.join(causes)}, none on record")
    return None


def _tdap(member: Member, as_of: date) -> Gap | None:
    if 11 <= member.age <= 12:
        return _once("TDAP", "adolescent booster", 11, 12)(member, as_of)
    if member.age < 19:
        return None
    last = member.last_doses.get("TDAP")
    if last is not None and (as_of - last).days < TDAP_INTERVAL_YEARS * 365.25:
        return None
    return Gap("TDAP", False, f"TDAP due: adults every {TDAP_INTERVAL_YEARS} years, none on record in that time")


def _hepb(member: Member, as_of: date) -> Gap | None:
    if 19 <= member.age <= 59 and "diabetes" in member.conditions and "HEPB" not in member.last_doses:
        return Gap("HEPB", False, "HEPB due: aged 19-59 with diabetes, none on record")
    return None


RULES: tuple[Callable[[Member, date], Gap | None], ...] = (
    _flu,
    _pneumo,
    _once("SHINGLES", "shingles", 50, None),
    _tdap,
    _once("HPV", "HPV series", 9, 26, by_age_overdue=False),
    _hepb,
    _once("MMR", "first MMR dose", 1, 6),
)


def _hpv_overdue(member: Member, gap: Gap) -> Gap:
    # HPV is recommended at 11-12: from 13 on a missing series is overdue.
    if gap.vaccine == "HPV" and member.age >= 13:
        return Gap("HPV", True, gap.reason.replace("HPV due", "HPV overdue") + " (recommended at 11-12)")
    return gap


def vaccine_gaps(member: Member, as_of: date) -> list[Gap]:
    """The member's due vaccines, in VACCINE_CODES order."""
    gaps = [gap for rule in RULES if (gap := rule(member, as_of)) is not None]
    return sorted((_hpv_overdue(member, gap) for gap in gaps), key=lambda gap: VACCINE_CODES.index(gap.vaccine))


@dataclass(frozen=True)
class Outreach:
    tier: int
    tier_reason: str
    priority_score: float


def prioritise(gaps: list[Gap], risk_score: float, high_risk: bool) -> Outreach:
    overdue = [gap.vaccine for gap in gaps if gap.overdue]
    gap_score = min(100, GAP_POINTS_OVERDUE * len(overdue) + GAP_POINTS_DUE * (len(gaps) - len(overdue)))
    priority = round(RISK_WEIGHT * risk_score + (1 - RISK_WEIGHT) * gap_score, 2)
    if high_risk and overdue:
        return Outreach(1, f"predicted high risk and overdue for {', '.join(overdue)}", priority)
    if high_risk:
        return Outreach(2, "predicted high risk with vaccines due", priority)
    if len(overdue) >= 2:
        return Outreach(2, f"overdue for {len(overdue)} vaccines: {', '.join(overdue)}", priority)
    return Outreach(3, "vaccines due, not predicted high risk", priority)


def _member(row) -> Member:
    conditions = frozenset(flag.removeprefix("has_") for flag in CONDITION_FLAGS if bool(row[flag]))
    last_doses = {
        code: pd.Timestamp(row[f"last_{code}"]).date() for code in VACCINE_CODES if not pd.isna(row[f"last_{code}"])
    }
    return Member(int(row["age"]), conditions, bool(row["is_smoker"]), last_doses)


def outreach_rows(members: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """One output row (OUTREACH_SCHEMA) per member with at least one vaccine due."""
    rows = []
    for row in members.to_dict("records"):
        gaps = vaccine_gaps(_member(row), as_of)
        if not gaps:
            continue
        risk_score, high_risk = float(row["risk_score"]), bool(row["high_risk_prediction"])
        decision = prioritise(gaps, risk_score, high_risk)
        reasons = [gap.reason for gap in gaps]
        if high_risk:
            reasons.insert(0, f"predicted high risk (risk score {risk_score:.1f})")
        rows.append(
            {
                "member_key": row["member_key"],
                "age": int(row["age"]),
                "risk_score": risk_score,
                "high_risk_prediction": high_risk,
                "due_vaccines": [gap.vaccine for gap in gaps],
                "overdue_vaccines": [gap.vaccine for gap in gaps if gap.overdue],
                "gaps_in_care": len(gaps),
                "reasons": reasons,
                "outreach_tier": decision.tier,
                "tier_reason": decision.tier_reason,
                "outreach_priority_score": decision.priority_score,
            }
        )
    columns = [part.split(" ")[0] for part in OUTREACH_SCHEMA.split(", ")]
    return pd.DataFrame(rows, columns=columns)
