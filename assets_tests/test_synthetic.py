"""Tests of the synthetic landing feeds: contracts, determinism, enrolment events, fraud, bad records, knobs."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from healthcare_assets.domain.sources import (
    DATE,
    DOUBLE,
    FRAUD_LABELS_FOLDER,
    FRAUD_PATTERNS,
    IMMUNIZATIONS,
    INT,
    MEDICAL_CLAIMS,
    MEMBER_ELIGIBILITY,
    MONEY,
    PHARMACY_CLAIMS,
    SOURCES,
    Column,
    Source,
)
from healthcare_assets.domain.synthetic import (
    BAD_RECORD_KINDS,
    LAB_COMPONENTS,
    DayData,
    DayManifest,
    MemberStateCache,
    SyntheticConfig,
    age_group,
    generate_day,
    member_roster,
    write_landing_day,
)

ROSTER_DATE = date(2026, 1, 1)
SMALL = SyntheticConfig(
    roster_date=ROSTER_DATE,
    num_members=600,
    num_providers=60,
    claims_per_day=300,
    rx_claims_per_day=150,
    immunizations_per_day=30,
)
# enough claims per day for every fraud pattern to show up several times
BUSY = replace(SMALL, num_members=1_500, claims_per_day=4_000, fraud_rate=0.05)
MINOR_DIAGNOSES = {"J06.9", "R51.9", "J02.9", "Z00.00", "Z00.129"}


# --------------------------------------------------------------------------- an independent validator

# money is exact to the cent
_NUMBER_TEXT = {
    INT: re.compile(r"-?[0-9]+"),
    DOUBLE: re.compile(r"-?[0-9]+(\.[0-9]+)?"),
    MONEY: re.compile(r"-?[0-9]+(\.[0-9]{1,2})?"),
}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _fields(source: Source, line: str) -> dict[str, object] | None:
    """Values of one data line by column (None when absent or empty), or None if the line is malformed."""
    if source.file_format == "jsonl":
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict) or set(record) - set(source.column_names):
            return None
        return {name: record.get(name) for name in source.column_names}
    try:
        values = next(csv.reader([line], strict=True))
    except csv.Error:
        return None
    if len(values) != len(source.columns):
        return None
    return {name: value or None for name, value in zip(source.column_names, values, strict=True)}


def _typed(column: Column, raw: object, from_json: bool) -> tuple[bool, object]:
    if column.dtype == DATE:
        if not isinstance(raw, str) or not _ISO_DATE.fullmatch(raw):
            return False, None
        try:
            return True, date.fromisoformat(raw)
        except ValueError:
            return False, None
    if column.dtype in (INT, DOUBLE, MONEY):
        if from_json:
            numeric_types = (int,) if column.dtype == INT else (int, float)
            valid = isinstance(raw, numeric_types) and not isinstance(raw, bool)
            raw = str(raw) if valid else "not a number"
        if not _NUMBER_TEXT[column.dtype].fullmatch(raw):
            return False, None
        return True, float(raw)
    return isinstance(raw, str), raw


def violations(source: Source, line: str, received: date) -> list[str]:
    """Every rule of `source` the line breaks, named like the manifest's bad record kinds."""
    values = _fields(source, line)
    if values is None:
        return ["malformed"]
    found: list[str] = []
    parsed: dict[str, object] = {}
    for column in source.columns:
        raw = values[column.name]
        if raw is None:
            if column.required:
                found.append("missing_key" if column.name in source.key else "missing_required")
            continue
        valid, value = _typed(column, raw, source.file_format == "jsonl")
        if not valid:
            found.append("wrong_type")
            continue
        parsed[column.name] = value
        below = column.min_value is not None and value < column.min_value
        above = column.max_value is not None and value > column.max_value
        if below or above:
            found.append("out_of_range")
        if column.allowed is not None and value not in column.allowed:
            found.append("unknown_code")
        if column.pattern is not None and not re.fullmatch(column.pattern, value):
            found.append("unknown_code")
    for name in source.not_after_receipt:
        if name in parsed and parsed[name] > received:
            found.append("future_date")
    for earlier, later in source.ordered_dates:
        if earlier in parsed and later in parsed and parsed[earlier] > parsed[later]:
            found.append("unordered_dates")
    return found


# --------------------------------------------------------------------------- helpers


def data_lines(data: DayData, source: Source) -> list[str]:
    lines = data.lines[source.name]
    return lines[1:] if source.file_format == "csv" else lines


def good_frame(data: DayData, source: Source) -> pd.DataFrame:
    """The lines that pass validation, as strings (JSON values keep their JSON types)."""
    lines = [line for line in data_lines(data, source) if not violations(source, line, data.day)]
    if source.file_format == "jsonl":
        return pd.DataFrame([json.loads(line) for line in lines], columns=source.column_names)
    text = "\n".join([",".join(source.column_names), *lines])
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def labels_frame(data: DayData) -> pd.DataFrame:
    return pd.DataFrame(data.fraud_labels, columns=["claim_id", "fraud_pattern"])


def legitimate_claims(data: DayData) -> pd.DataFrame:
    claims = good_frame(data, MEDICAL_CLAIMS)
    claims = claims[~claims["claim_id"].isin(labels_frame(data)["claim_id"])].copy()
    claims["claim_amount"] = claims["claim_amount"].astype(float)
    return claims


def ages_on(birth: pd.Series, on: pd.Series) -> np.ndarray:
    birth, on = pd.to_datetime(birth), pd.to_datetime(on)
    before_birthday = (on.dt.month * 100 + on.dt.day) < (birth.dt.month * 100 + birth.dt.day)
    return (on.dt.year - birth.dt.year - before_birthday).to_numpy()


def all_files(root: Path) -> dict[str, bytes]:
    """The landing zone's files, without the generator's hidden member-state cache."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and MemberStateCache.FOLDER not in p.parts)
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# --------------------------------------------------------------------------- determinism and files


def test_same_config_and_day_give_identical_files(tmp_path: Path) -> None:
    day = ROSTER_DATE + timedelta(days=3)
    config = replace(SMALL, bad_record_rate=0.05)
    write_landing_day(config, day, tmp_path / "a")
    write_landing_day(config, ROSTER_DATE, tmp_path / "b")  # another day first: call order must not matter
    write_landing_day(config, day, tmp_path / "b")
    first = all_files(tmp_path / "a")
    write_landing_day(config, day, tmp_path / "a")  # rewriting replaces with identical bytes

    assert all_files(tmp_path / "a") == first
    assert {k: v for k, v in all_files(tmp_path / "b").items() if day.isoformat() in k} == first

    other_seed = generate_day(replace(config, seed=7), day)
    same_seed = generate_day(config, day)
    for source in SOURCES.values():
        assert other_seed.lines[source.name] != same_seed.lines[source.name]


def test_writes_are_atomic_and_follow_the_path_contract(tmp_path: Path) -> None:
    day = date(2026, 1, 5)
    manifest = write_landing_day(SMALL, day, tmp_path)
    data = generate_day(SMALL, day)

    feeds = {
        "medical_claims": "medical_claims/2026-01-05/claims_20260105.csv",
        "pharmacy_claims": "pharmacy_claims/2026-01-05/rx_20260105.jsonl",
        "member_eligibility": "member_eligibility/2026-01-05/eligibility_20260105.csv",
        "immunizations": "immunizations/2026-01-05/immunizations_20260105.csv",
    }
    labels_path = f"{FRAUD_LABELS_FOLDER}/2026-01-05/fraud_labels_20260105.csv"
    risk_scores_path = "member_risk_scores/2026-01-05/member_risk_scores_20260105.csv"
    assert manifest.files == feeds
    # nothing else: no temp file is left behind
    assert set(all_files(tmp_path)) == {*feeds.values(), labels_path, risk_scores_path, "_manifests/2026-01-05.json"}
    for name, path in manifest.files.items():
        text = (tmp_path / path).read_text(encoding="utf-8")
        assert text == "".join(line + "\n" for line in data.lines[name])
        assert text.count("\n") == manifest.rows[name] + (SOURCES[name].file_format == "csv")
    assert (tmp_path / labels_path).read_text().splitlines() == data.fraud_label_lines
    stored = json.loads((tmp_path / "_manifests" / "2026-01-05.json").read_text())
    assert stored == manifest.to_dict() == data.manifest.to_dict()
    assert DayManifest.from_dict(stored) == manifest
    assert [p.name for p in MemberStateCache(tmp_path, SMALL).folder.iterdir()] == ["2026-01-05.parquet"]


def test_a_day_resumed_from_the_saved_member_state_is_the_day_replayed_from_the_roster(tmp_path: Path) -> None:
    cache = MemberStateCache(tmp_path, SMALL)
    for offset in range(20):
        generate_day(SMALL, ROSTER_DATE + timedelta(days=offset), cache)
    later, earlier = ROSTER_DATE + timedelta(days=26), ROSTER_DATE + timedelta(days=5)
    resumed = generate_day(SMALL, later, cache)  # from day 19's saved state: six days replayed
    assert resumed.lines == generate_day(SMALL, later).lines
    # an earlier day rewritten afterwards replays from the roster and leaves the newest state in place
    assert generate_day(SMALL, earlier, cache).lines == generate_day(SMALL, earlier).lines
    assert [p.name for p in cache.folder.iterdir()] == [f"{later}.parquet"]
    # another config never reads this one's state
    assert MemberStateCache(tmp_path, replace(SMALL, seed=7)).newest_before(later) is None


def test_day_before_roster_date_is_rejected() -> None:
    with pytest.raises(ValueError, match="before the roster date"):
        generate_day(SMALL, ROSTER_DATE - timedelta(days=1))


@pytest.mark.parametrize(
    "changes",
    [{"num_providers": 5}, {"fraud_rate": 1.0}, {"bad_record_rate": -0.1}, {"bias_group": ("shoe_size", "42")}],
)
def test_invalid_configs_are_rejected(changes: dict) -> None:
    with pytest.raises(ValueError):
        replace(SMALL, **changes)


# --------------------------------------------------------------------------- members and eligibility


@pytest.mark.parametrize(
    ("age", "group"),
    [
        (0, "0-17"),
        (17, "0-17"),
        (18, "18-34"),
        (34, "18-34"),
        (35, "35-49"),
        (49, "35-49"),
        (50, "50-64"),
        (64, "50-64"),
        (65, "65+"),
        (101, "65+"),
    ],
)
def test_age_group_boundaries(age: int, group: str) -> None:
    assert age_group(age) == group


def test_member_roster_is_realistic_and_deterministic() -> None:
    roster = member_roster(SMALL)
    assert roster.equals(member_roster(replace(SMALL)))
    roster.loc[0, "first_name"] = "Changed"  # callers get a copy, never the cached frame
    assert member_roster(SMALL).loc[0, "first_name"] != "Changed"

    roster = member_roster(replace(SMALL, num_members=3_000))
    for phi in ("member_id", "first_name", "last_name", "date_of_birth", "street_address", "city", "zip_code"):
        assert roster[phi].notna().all()
    assert roster["member_id"].str.fullmatch(r"MCD[0-9]{9}").all() and roster["member_id"].is_unique
    assert not roster["street_address"].str.contains(",").any()
    on_roster = (roster["enrol_date"] <= pd.Timestamp(ROSTER_DATE)).mean()
    assert 0.86 < on_roster < 0.94
    assert 0.03 < roster["term_date"].notna().mean() < 0.07
    late = roster["enrol_date"] > pd.Timestamp(ROSTER_DATE)
    assert (roster.loc[late, "enrol_date"] <= pd.Timestamp(ROSTER_DATE + timedelta(days=365))).all()
    assert (roster["term_date"].dropna() > roster.loc[roster["term_date"].notna(), "enrol_date"]).all()
    assert (roster["date_of_birth"] <= roster["enrol_date"]).all()

    ages = roster["age_at_roster"]
    assert 0.30 < (ages < 18).mean() < 0.45 and 0.05 < (ages >= 65).mean() < 0.15
    assert (roster["age_group"] == ages.map(age_group)).all()
    assert set(roster.loc[roster["plan_code"] == "MCD-CHIP", "age_group"]) == {"0-17"}
    assert (roster.loc[ages < 13, "smoker"] == "N").all()
    assert roster.loc[ages >= 18, "bmi"].between(26, 32).mean() > 0.3 and roster["bmi"].between(12, 70).all()
    # chronic conditions and risk rise with age
    older, younger = roster[ages >= 50], roster[ages < 18]
    assert older["chronic_count"].mean() > younger["chronic_count"].mean() + 0.5
    assert older["latent_risk"].mean() > 2 * younger["latent_risk"].mean()
    assert roster["latent_risk"].mean() == pytest.approx(1.0)


def test_roster_day_lists_every_roster_member_exactly_once() -> None:
    data = generate_day(SMALL, ROSTER_DATE)
    eligibility = good_frame(data, MEMBER_ELIGIBILITY)
    roster = member_roster(SMALL)
    on_roster = roster[roster["enrol_date"] <= pd.Timestamp(ROSTER_DATE)]

    assert len(eligibility) == data.manifest.rows["member_eligibility"] == len(on_roster)
    assert set(eligibility["maintenance_type"]) == {"ADD"}
    assert eligibility["member_id"].is_unique
    assert set(eligibility["member_id"]) == set(on_roster["member_id"])
    starts = dict(zip(on_roster["member_id"], on_roster["enrol_date"].dt.strftime("%Y-%m-%d"), strict=True))
    assert (eligibility["eligibility_start_date"] == eligibility["member_id"].map(starts)).all()
    assert (eligibility["eligibility_end_date"] == "").all()


def test_later_days_carry_only_add_change_and_term_records() -> None:
    roster = member_roster(SMALL).set_index("member_id")
    late = sorted(roster.loc[roster["enrol_date"] > pd.Timestamp(ROSTER_DATE), "enrol_date"].dt.date.unique())
    terms = sorted(roster["term_date"].dropna().dt.date.unique())
    days = sorted({ROSTER_DATE + timedelta(days=1), ROSTER_DATE + timedelta(days=2), *late[:3], *terms[:3]})

    keys: Counter[tuple[str, str, str]] = Counter()
    kinds: Counter[str] = Counter()
    for day in days:
        records = good_frame(generate_day(SMALL, day), MEMBER_ELIGIBILITY)
        by_type = {kind: records[records["maintenance_type"] == kind] for kind in ("ADD", "CHANGE", "TERM")}
        assert set(records["maintenance_type"]) <= set(by_type)
        kinds.update(records["maintenance_type"])
        keys.update(
            zip(records["member_id"], records["maintenance_type"], records["eligibility_start_date"], strict=True)
        )
        enrol = roster["enrol_date"].dt.date
        term = roster["term_date"].dt.date

        adds, changes, ends = by_type["ADD"], by_type["CHANGE"], by_type["TERM"]
        assert set(adds["member_id"]) == set(roster.index[enrol == day])
        assert (adds["eligibility_start_date"] == day.isoformat()).all()
        assert set(ends["member_id"]) == set(roster.index[term == day])
        assert (ends["eligibility_end_date"] == day.isoformat()).all()
        assert (ends["eligibility_start_date"] == ends["member_id"].map(enrol).astype(str)).all()

        assert (changes["eligibility_start_date"] == day.isoformat()).all()
        assert (changes["eligibility_end_date"] == "").all()
        changed = roster.loc[changes["member_id"]]
        assert (changed["enrol_date"] < pd.Timestamp(day)).all()
        assert (changed["term_date"].isna() | (changed["term_date"] > pd.Timestamp(day))).all()
        # a CHANGE carries the full record: fixed attributes are the member's own
        for column in ("first_name", "last_name", "gender"):
            assert (changes[column].to_numpy() == changed[column].to_numpy()).all()
        assert (
            changes["date_of_birth"].to_numpy() == changed["date_of_birth"].dt.strftime("%Y-%m-%d").to_numpy()
        ).all()

    assert kinds["ADD"] >= 3 and kinds["TERM"] >= 3 and kinds["CHANGE"] > 0
    assert max(keys.values()) == 1


def test_each_change_builds_on_the_previous_record() -> None:
    """Consecutive records of a member differ in one attribute group at most: changes accumulate."""
    enrolment_only = replace(SMALL, num_members=1_500, claims_per_day=0, rx_claims_per_day=0, immunizations_per_day=0)
    days = [ROSTER_DATE + timedelta(days=offset) for offset in range(60)]
    records = pd.concat([good_frame(generate_day(enrolment_only, day), MEMBER_ELIGIBILITY) for day in days])
    records = records[records["maintenance_type"] != "TERM"]
    groups = [
        {"plan_code"},
        {"street_address", "city", "zip_code"},
        {"geographic_region", "street_address", "city", "zip_code"},
        {"bmi", "smoker"},
    ]
    mutable = sorted(set().union(*groups))
    members_changed_twice = 0
    for _, history in records.groupby("member_id"):
        history = history.sort_values("eligibility_start_date")[mutable].to_dict("records")
        members_changed_twice += len(history) >= 3
        for earlier, later in pairwise(history):
            differing = {column for column in mutable if earlier[column] != later[column]}
            assert any(differing <= group for group in groups), differing
    assert members_changed_twice >= 5


# --------------------------------------------------------------------------- rules of the contract


@pytest.mark.parametrize("offset", [0, 9, 40])
def test_every_good_row_satisfies_every_rule_of_its_source(offset: int) -> None:
    day = ROSTER_DATE + timedelta(days=offset)
    data = generate_day(SMALL, day)
    for name, source in SOURCES.items():
        lines = data_lines(data, source)
        assert data.manifest.rows[name] == len(lines) > 0
        if source.file_format == "csv":
            assert data.lines[name][0] == ",".join(source.column_names)
        broken = [(line, violations(source, line, day)) for line in lines]
        assert [b for b in broken if b[1]] == []
        assert sum(data.manifest.bad_rows[name].values()) == 0 and data.manifest.duplicate_rows[name] == 0
        assert len(set(lines)) == len(lines)
        assert all("\n" not in line and "\r" not in line for line in lines)


def test_claims_are_clinically_consistent() -> None:
    data = generate_day(SMALL, ROSTER_DATE + timedelta(days=20))
    claims = legitimate_claims(data)
    start = pd.to_datetime(claims["service_start_date"])
    end = pd.to_datetime(claims["service_end_date"])
    stay = (end - start).dt.days
    inpatient = claims["claim_type"] == "inpatient"
    assert stay[inpatient].between(1, 10).all() and (stay[~inpatient] == 0).all()
    assert (pd.Timestamp(data.day) - end).dt.days.between(0, 30).all()
    assert (claims["paid_amount"].astype(float) <= claims["claim_amount"]).all()
    assert claims.loc[claims["claim_type"] == "emergency", "procedure_code"].str.match("9928[1-5]").all()
    assert claims.loc[inpatient, "procedure_code"].isin({"99221", "99222", "99223"}).all()
    assert (claims.loc[claims["procedure_code"] == "97110", "provider_specialty"] == "physical_therapy").all()
    # the top office level is never billed for a minor diagnosis by an honest provider
    assert not ((claims["procedure_code"] == "99215") & claims["diagnosis_code"].isin(MINOR_DIAGNOSES)).any()
    shares = claims["claim_type"].value_counts(normalize=True)
    assert shares["professional"] > 0.55 and shares["inpatient"] < 0.12
    # each provider has one fixed experience
    assert (claims.groupby("provider_id")["provider_experience_years"].nunique() == 1).all()


def test_pharmacy_and_immunizations_follow_conditions_and_age() -> None:
    config = replace(SMALL, immunizations_per_day=300)
    data = generate_day(config, ROSTER_DATE + timedelta(days=12))
    roster = member_roster(config).set_index("member_id")

    fills = good_frame(data, PHARMACY_CLAIMS)
    antidiabetic = fills.loc[fills["drug_class"] == "antidiabetic", "member_id"]
    assert len(antidiabetic) and roster.loc[antidiabetic, "has_diabetes"].all()
    assert roster.loc[fills.loc[fills["drug_class"] == "antidepressant", "member_id"], "has_depression"].all()
    assert fills["days_supply"].map(type).eq(int).all() and fills["rx_amount"].gt(0).all()

    shots = good_frame(data, IMMUNIZATIONS)
    ages = ages_on(roster.loc[shots["member_id"], "date_of_birth"].reset_index(drop=True), shots["administered_date"])
    vaccine = shots["vaccine_code"].to_numpy()
    assert (ages[vaccine == "HPV"] >= 9).all() and (ages[vaccine == "HPV"] <= 26).all()
    assert (ages[vaccine == "SHINGLES"] >= 50).all()
    assert (ages[vaccine == "MMR"] <= 6).all()
    assert Counter(vaccine).most_common(1)[0][0] == "FLU"  # January is flu season


def test_record_ids_are_unique_across_days() -> None:
    first, second = (generate_day(SMALL, ROSTER_DATE + timedelta(days=offset)) for offset in (1, 2))
    for source, key in (
        (MEDICAL_CLAIMS, "claim_id"),
        (PHARMACY_CLAIMS, "rx_claim_id"),
        (IMMUNIZATIONS, "immunization_id"),
    ):
        ids = [set(good_frame(data, source)[key]) for data in (first, second)]
        assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert good_frame(first, MEDICAL_CLAIMS)["claim_id"].str.fullmatch(r"CLM[0-9]+").all()


# --------------------------------------------------------------------------- fraud labels


@pytest.fixture(scope="module")
def busy_day() -> DayData:
    return generate_day(BUSY, ROSTER_DATE + timedelta(days=15))


def test_fraud_labels_count_and_point_at_real_claims(busy_day: DayData) -> None:
    claims = good_frame(busy_day, MEDICAL_CLAIMS)
    labels = labels_frame(busy_day)
    assert claims["claim_id"].is_unique
    assert labels["claim_id"].is_unique and set(labels["claim_id"]) <= set(claims["claim_id"])
    assert len(labels) / len(claims) == pytest.approx(BUSY.fraud_rate, abs=0.01)
    assert busy_day.manifest.fraud == {p: int((labels["fraud_pattern"] == p).sum()) for p in FRAUD_PATTERNS}
    assert all(busy_day.manifest.fraud[p] >= 10 for p in FRAUD_PATTERNS)


def test_each_fraud_pattern_has_its_signature(busy_day: DayData) -> None:
    claims = good_frame(busy_day, MEDICAL_CLAIMS)
    pattern = claims["claim_id"].map(dict(busy_day.fraud_labels))
    legit = claims[pattern.isna()]

    upcoded = claims[pattern == "upcoding"]
    assert upcoded["procedure_code"].isin({"99215", "99285"}).all()
    assert upcoded["diagnosis_code"].isin(MINOR_DIAGNOSES).all()

    # a duplicate differs from a legitimate claim of the day only by its claim id
    fields = [c for c in MEDICAL_CLAIMS.column_names if c != "claim_id"]
    legit_rows = set(legit[fields].itertuples(index=False, name=None))
    copies = claims.loc[pattern == "duplicate_billing", fields].itertuples(index=False, name=None)
    assert all(row in legit_rows for row in copies)

    phantom = claims[pattern == "phantom_provider"]
    assert not set(phantom["provider_id"]) & set(legit["provider_id"])
    assert phantom["provider_experience_years"].astype(int).le(1).all()
    assert phantom["claim_amount"].astype(float).mean() > 2 * legit["claim_amount"].astype(float).median()
    legit_pairs = set(zip(legit["diagnosis_code"], legit["provider_specialty"], strict=True))
    assert not set(zip(phantom["diagnosis_code"], phantom["provider_specialty"], strict=True)) & legit_pairs

    unbundled = claims[pattern == "unbundling"]
    assert unbundled["procedure_code"].isin(LAB_COMPONENTS).all()
    groups = unbundled.groupby(["member_id", "provider_id", "service_start_date"])["procedure_code"]
    assert groups.size().between(4, 8).all()
    assert (groups.nunique() == groups.size()).all()


# --------------------------------------------------------------------------- bad records and duplicates


@pytest.mark.parametrize("offset", [0, 6, 30])
def test_bad_records_match_the_manifest(offset: int) -> None:
    config = replace(SMALL, bad_record_rate=0.05)
    day = ROSTER_DATE + timedelta(days=offset)
    data = generate_day(config, day)
    labelled = {claim_id for claim_id, _ in data.fraud_labels}
    for name, source in SOURCES.items():
        lines = data_lines(data, source)
        if source.file_format == "csv":
            assert data.lines[name][0] == ",".join(source.column_names)
        found = [violations(source, line, day) for line in lines]
        assert all(len(kinds) <= 1 for kinds in found), "a bad row breaks exactly one rule"
        counted = Counter(kinds[0] for kinds in found if kinds)
        assert counted == Counter({k: n for k, n in data.manifest.bad_rows[name].items() if n})
        assert set(data.manifest.bad_rows[name]) == set(BAD_RECORD_KINDS)
        assert len(lines) - len(set(lines)) == data.manifest.duplicate_rows[name]
        assert data.manifest.rows[name] == len(lines)
        if name == MEDICAL_CLAIMS.name:
            good_ids = {line.split(",")[0] for line, kinds in zip(lines, found, strict=True) if not kinds}
            assert labelled <= good_ids, "fraud labels only point at good claims"


def test_bad_record_rate_is_respected_and_mixes_kinds() -> None:
    config = replace(SMALL, bad_record_rate=0.05)
    rows = duplicates = 0
    kinds: Counter[str] = Counter()
    for offset in range(1, 6):
        manifest = generate_day(config, ROSTER_DATE + timedelta(days=offset)).manifest
        for name in ("medical_claims", "pharmacy_claims"):
            rows += manifest.rows[name]
            kinds.update(manifest.bad_rows[name])
            duplicates += manifest.duplicate_rows[name]
    assert sum(kinds.values()) / rows == pytest.approx(0.05, abs=0.015)
    assert duplicates / rows == pytest.approx(0.01, abs=0.006)
    assert set(+kinds) == set(BAD_RECORD_KINDS)


# --------------------------------------------------------------------------- drift, bias and risk


def test_drift_raises_amounts_and_shifts_the_mix_after_its_start() -> None:
    start = ROSTER_DATE + timedelta(days=10)
    drifted = replace(SMALL, claims_per_day=1_500, drift_start=start, drift_strength=1.0)
    steady = replace(drifted, drift_start=None)

    before = start - timedelta(days=1)
    assert generate_day(drifted, before).lines == generate_day(steady, before).lines

    after = start + timedelta(days=2)
    shifted, baseline = legitimate_claims(generate_day(drifted, after)), legitimate_claims(generate_day(steady, after))
    assert shifted["claim_amount"].mean() > 1.5 * baseline["claim_amount"].mean()
    acute = {"emergency", "inpatient"}
    assert shifted["claim_type"].isin(acute).mean() > baseline["claim_type"].isin(acute).mean() + 0.08
    roster = member_roster(SMALL).set_index("member_id")
    assert (
        roster.loc[shifted["member_id"], "age_at_roster"].mean()
        > roster.loc[baseline["member_id"], "age_at_roster"].mean()
    )


@pytest.mark.parametrize("group", [("gender", "F"), ("age_group", "65+"), ("geographic_region", "Southwest")])
def test_bias_widens_the_amount_spread_of_its_group_only(group: tuple[str, str]) -> None:
    biased = replace(SMALL, claims_per_day=2_000, bias_group=group, bias_strength=1.0)
    fair = replace(biased, bias_group=None, bias_strength=0.0)
    day = ROSTER_DATE + timedelta(days=5)
    roster = member_roster(SMALL).set_index("member_id")

    def log_amount_spread(config: SyntheticConfig) -> tuple[float, float]:
        claims = legitimate_claims(generate_day(config, day))
        attribute, value = group
        if attribute == "age_group":
            members = pd.Series(ages_on(claims["patient_dob"], claims["service_start_date"])).map(age_group)
        else:
            members = claims["member_id"].map(roster[attribute]).reset_index(drop=True)
        in_group = (members == value).to_numpy()
        spread = np.log(claims["claim_amount"].to_numpy())
        return spread[in_group].std(), spread[~in_group].std()

    biased_in, biased_out = log_amount_spread(biased)
    fair_in, fair_out = log_amount_spread(fair)
    assert biased_in > fair_in + 0.3
    assert biased_out == pytest.approx(fair_out, abs=0.1)


def test_latent_risk_drives_claims_per_member() -> None:
    roster = member_roster(SMALL).set_index("member_id")
    days = [ROSTER_DATE + timedelta(days=offset) for offset in range(30)]
    stays = (roster["enrol_date"] <= pd.Timestamp(ROSTER_DATE)) & (
        roster["term_date"].isna() | (roster["term_date"] > pd.Timestamp(days[-1]))
    )
    counts: Counter[str] = Counter()
    for day in days:
        counts.update(legitimate_claims(generate_day(SMALL, day))["member_id"])
    members = roster[stays]
    claims_per_member = members.index.map(lambda m: counts.get(m, 0)).to_numpy()
    assert np.corrcoef(members["latent_risk"], claims_per_member)[0, 1] > 0.5


def test_a_hundred_thousand_claim_day_generates() -> None:
    config = replace(SMALL, num_members=5_000, num_providers=150, claims_per_day=100_000)
    data = generate_day(config, ROSTER_DATE + timedelta(days=3))
    assert 95_000 < data.manifest.rows["medical_claims"] < 110_000
