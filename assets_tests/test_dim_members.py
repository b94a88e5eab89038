"""SCD type 2 behaviour of the member dimension over several days of enrolment changes."""

from datetime import date

import pytest

from healthcare_assets.resources.delta import TableRef
from healthcare_assets.transforms import quality, silver

# also run on classic Spark + delta-spark (the Databricks engine) by `make test`
pytestmark = pytest.mark.engine_fidelity

DIM = TableRef("silver", "dim_members")
COLUMNS = (
    "member_key string, maintenance_type string, eligibility_start_date date, eligibility_end_date date, "
    "gender string, birth_year int, geographic_region string, plan_code string, address_key string, "
    "bmi double, smoker string, _source_file string, _line_number long, ingest_date date"
)
D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def _record(member, kind, start, received, region="Central", plan="MCD-TANF", end=None, line=2):
    return (
        member,
        kind,
        start,
        end,
        "F",
        1980,
        region,
        plan,
        "addr-1",
        28.0,
        "N",
        f"eligibility_{received}.csv",
        line,
        received,
    )


def _apply(spark, storage, records):
    storage.merge(DIM, silver.dim_members(spark.createDataFrame(records, COLUMNS)), silver.DIM_MEMBERS_MERGE)
    return {(r["member_key"], r["version"]): r for r in storage.read(DIM).collect()}


DAY1 = [_record("m1", "ADD", date(2025, 6, 1), D1), _record("m2", "ADD", date(2025, 7, 1), D1, line=3)]
DAY2 = [_record("m1", "CHANGE", D2, D2, region="Northeast")]
DAY3 = [
    _record("m1", "CHANGE", D3, D3, region="Northeast", plan="MCD-EXP"),
    _record("m2", "TERM", date(2025, 7, 1), D3, end=D3, line=3),
]


def test_first_day_creates_one_current_version_per_member(spark, storage):
    dim = _apply(spark, storage, DAY1)
    assert set(dim) == {("m1", 1), ("m2", 1)}
    assert all(r["is_current_record"] and r["effective_to"] is None for r in dim.values())
    assert dim[("m1", 1)]["effective_from"] == date(2025, 6, 1)


def test_two_days_of_changes_close_old_versions_and_open_new_ones(spark, storage):
    _apply(spark, storage, DAY1)
    _apply(spark, storage, DAY1 + DAY2)
    dim = _apply(spark, storage, DAY1 + DAY2 + DAY3)
    m1 = [dim[("m1", v)] for v in (1, 2, 3)]
    assert [r["geographic_region"] for r in m1] == ["Central", "Northeast", "Northeast"]
    assert [r["plan_code"] for r in m1] == ["MCD-TANF", "MCD-TANF", "MCD-EXP"]
    assert [r["effective_to"] for r in m1] == [date(2026, 1, 1), date(2026, 1, 2), None]
    assert [r["is_current_record"] for r in m1] == [False, False, True]
    m2 = [dim[("m2", v)] for v in (1, 2)]
    assert [r["enrollment_status"] for r in m2] == ["active", "terminated"]
    assert m2[1]["effective_from"] == D3 and m2[1]["is_current_record"]
    violations = quality.current_record_violations(storage.read(DIM))
    assert violations["members_without_exactly_one_current_record"] == 0
    assert violations["versions_ending_before_they_start"] == 0


def test_a_record_repeating_current_attributes_opens_no_version(spark, storage):
    unchanged = [_record("m2", "CHANGE", D2, D2)]
    dim = _apply(spark, storage, DAY1 + unchanged)
    assert set(dim) == {("m1", 1), ("m2", 1)}


def test_rerunning_with_the_same_history_changes_nothing(spark, storage):
    history = DAY1 + DAY2 + DAY3
    first = _apply(spark, storage, history)
    second = _apply(spark, storage, history)
    assert first == second


def test_a_late_record_lands_in_its_place_in_history(spark, storage):
    _apply(spark, storage, DAY1 + DAY3)
    late = [_record("m1", "CHANGE", D2, D3, region="Northeast", line=9)]
    dim = _apply(spark, storage, DAY1 + DAY3 + late)
    m1 = sorted((r for r in dim.values() if r["member_key"] == "m1"), key=lambda r: r["version"])
    assert [r["effective_from"] for r in m1] == [date(2025, 6, 1), D2, D3]
    assert [r["effective_to"] for r in m1] == [date(2026, 1, 1), date(2026, 1, 2), None]


def test_merging_only_the_members_a_day_touched_gives_the_full_derivation(spark, storage):
    late = [_record("m2", "CHANGE", D2, D3, region="West", line=4)]  # a change received a day late
    days = [(D1, DAY1), (D2, DAY2), (D3, DAY3 + late)]
    received: list[tuple] = []
    for day, records in days:
        received += records
        eligibility = spark.createDataFrame(received, COLUMNS)
        if not storage.exists(DIM):
            storage.merge(DIM, silver.dim_members(eligibility), silver.DIM_MEMBERS_MERGE)
            continue
        touched = silver.touched_members(eligibility, day, day)
        changes = silver.dim_members_changes(eligibility, storage.read(DIM), touched)
        storage.merge(DIM, changes, silver.DIM_MEMBERS_TOUCHED_MERGE)
    full = silver.dim_members(spark.createDataFrame(received, COLUMNS))
    assert sorted(storage.read(DIM).collect()) == sorted(full.collect())
    assert len({r["member_key"] for r in full.collect() if r["version"] > 1}) == 2  # both members changed


def test_a_touched_member_loses_a_version_its_records_no_longer_give(spark, storage):
    storage.merge(DIM, silver.dim_members(spark.createDataFrame(DAY1 + DAY2, COLUMNS)), silver.DIM_MEMBERS_MERGE)
    # day 2 re-delivered: the CHANGE is replaced by one that repeats the current attributes (no new version)
    redelivered = spark.createDataFrame(DAY1 + [_record("m1", "CHANGE", D2, D2)], COLUMNS)
    changes = silver.dim_members_changes(redelivered, storage.read(DIM), silver.touched_members(redelivered, D2, D2))
    storage.merge(DIM, changes, silver.DIM_MEMBERS_TOUCHED_MERGE)
    assert sorted(storage.read(DIM).collect()) == sorted(silver.dim_members(redelivered).collect())
    assert storage.read(DIM).where("member_key = 'm1'").count() == 1
