"""Features of gold.claim_features: resubmissions, lines per visit, price and coding norms, fixed-window member
history, an age that does not jump on 1 January; a day alone gives the rows a backfill gives."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from assets_tests.test_transforms import DIM, SILVER_CLAIMS
from healthcare_assets.transforms import gold

# also run on classic Spark + delta-spark (the Databricks engine) by `make test`
pytestmark = pytest.mark.engine_fidelity

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def _claim(claim_id, procedure, amount, received, provider="PRV1", diagnosis="E11.9", service=date(2025, 12, 30)):
    return (claim_id, "m1", provider, "internal_medicine", 12, "outpatient", diagnosis, procedure, service, service,
            amount, amount, received)  # fmt: skip


def test_context_features_see_resubmissions_visit_lines_prices_and_coding(spark):
    history = spark.createDataFrame(
        [
            _claim("C1", "82947", Decimal("10.00"), D1),
            _claim("C2", "82947", Decimal("10.00"), D2),  # the same bill again, received a day later
            _claim("C3", "84132", Decimal("40.00"), D2),  # another line of the same visit
            _claim("C4", "82947", Decimal("10.00"), D2, provider="PRV2"),  # another provider: another visit
        ],
        SILVER_CLAIMS,
    )
    members = spark.createDataFrame([("m1", 1, "F", 1980, "Central", "MCD-EXP", date(2020, 1, 1), None, True)], DIM)
    day2 = history.where("ingest_date = DATE'2026-01-02'")
    rows = {r["claim_id"]: r for r in gold.claim_features(day2, history, members).collect()}
    assert rows["C2"]["identical_claims_before"] == 1
    assert rows["C3"]["identical_claims_before"] == 0 and rows["C4"]["identical_claims_before"] == 0
    assert rows["C2"]["lines_same_visit"] == 3 and rows["C4"]["lines_same_visit"] == 1
    assert rows["C2"]["amount_to_procedure_typical"] == pytest.approx(1.0)
    assert rows["C2"]["procedure_share_for_diagnosis"] == pytest.approx(0.75)  # 3 of the 4 E11.9 claims
    day1 = gold.claim_features(history.where("ingest_date = DATE'2026-01-01'"), history, members).first()
    assert day1["lines_same_visit"] == 1 and day1["procedure_share_for_diagnosis"] == 1.0  # day 2 not yet known


def test_a_duplicate_bill_is_received_after_the_claim_it_copies():
    import io

    import pandas as pd

    from healthcare_assets.domain.synthetic import SyntheticConfig, generate_day

    data = generate_day(SyntheticConfig(claims_per_day=1_500, fraud_rate=0.05), date(2026, 1, 10))
    claims = pd.read_csv(io.StringIO("\n".join(data.lines["medical_claims"])), dtype=str)
    pattern = claims["claim_id"].map(dict(data.fraud_labels))
    fields = [c for c in claims.columns if c != "claim_id"]
    originals = claims[pattern.isna()].set_index(fields)["claim_id"]
    copies = claims[pattern == "duplicate_billing"]
    assert len(copies) >= 5
    for _, copy in copies.iterrows():
        assert originals.loc[tuple(copy[fields])] < copy["claim_id"]  # same-day ids are given in receipt order


def _member_claim(claim_id, member, received, service=None, amount="100.00"):
    service = service or received
    return (claim_id, member, "PRV1", "internal_medicine", 12, "outpatient", "I10", "99213", service, service,
            Decimal(amount), Decimal(amount), received)  # fmt: skip


def _members(spark, *birth_years):
    rows = [
        (f"m{n}", 1, "F", year, "Central", "MCD-EXP", date(2020, 1, 1), None, True)
        for n, year in enumerate(birth_years, 1)
    ]
    return spark.createDataFrame(rows, DIM)


def test_member_history_counts_only_the_fixed_window_as_rates_over_the_history_received(spark):
    day = date(2026, 6, 30)
    history = spark.createDataFrame(
        [
            _member_claim("H1", "m1", day - timedelta(days=120), amount="1000.00"),  # outside the 90-day window
            _member_claim("H2", "m1", day - timedelta(days=60), amount="100.00"),  # in the 90-day window only
            _member_claim("H3", "m1", day - timedelta(days=10), amount="300.00"),  # in both windows
            _member_claim("H4", "m2", day - timedelta(days=5)),  # another member, another received day
            _member_claim("C1", "m1", day, amount="400.00"),
            _member_claim("C2", "m2", day - timedelta(days=100)),  # m2's claim with nothing before it in reach
        ],
        SILVER_CLAIMS,
    )
    members = _members(spark, 1980, 1990)
    rows = {r["claim_id"]: r for r in gold.claim_features(history, history, members).collect()}
    c1 = rows["C1"]
    assert c1["history_days"] == 4  # received days in the window: day-60, day-10, day-5 and the day itself
    assert c1["claim_rate_30d"] == pytest.approx(1 * 30 / 3)  # H3 over 3 received days in the last 30
    assert c1["claim_rate_90d"] == pytest.approx(2 * 90 / 4)  # H2 and H3 over 4 received days
    assert c1["amount_to_member_mean"] == pytest.approx(2.0)  # 400 / mean(100, 300); H1 is out of reach
    assert c1["days_since_last_claim"] == 10
    c2 = rows["C2"]
    assert c2["history_days"] == 2  # day-120 and its own day
    assert c2["days_since_last_claim"] is None and c2["amount_to_member_mean"] is None  # not 0: no earlier claim
    assert c2["claim_rate_30d"] == 0.0 and c2["claim_rate_90d"] == 0.0


def test_patient_age_moves_on_1_july_not_on_1_january(spark):
    services = [date(2025, 12, 31), date(2026, 1, 1), date(2026, 6, 30), date(2026, 7, 1)]
    claims = spark.createDataFrame(
        [_member_claim(f"C{n}", f"m{n}", service) for n, service in enumerate(services, 1)], SILVER_CLAIMS
    )
    members = _members(spark, 1980, 1980, 1980, 1980)
    ages = {r["claim_date"]: r["patient_age"] for r in gold.claim_features(claims, claims, members).collect()}
    assert [ages[s] for s in services] == [45, 45, 45, 46]
    newborn = spark.createDataFrame([_member_claim("N1", "m1", date(2026, 3, 1))], SILVER_CLAIMS)
    assert gold.claim_features(newborn, newborn, _members(spark, 2026)).first()["patient_age"] == 0


def test_a_day_alone_gives_the_rows_a_backfill_gives(spark):
    """Day 3 computed on its own (the claims of its 90-day window as history) and inside a backfill of days 1-3."""
    days = [D1, D2, date(2026, 1, 3)]
    rows = []
    for number, received in enumerate(days, 1):
        for member in ("m1", "m2", "m3"):
            rows.append(_member_claim(f"C{number}{member}a", member, received, received - timedelta(days=2)))
            rows.append(_member_claim(f"C{number}{member}b", member, received, received - timedelta(days=1), "55.10"))
    history = spark.createDataFrame(rows, SILVER_CLAIMS)
    members = _members(spark, 1950, 1980, 2010)
    day3 = history.where(f"ingest_date = DATE'{days[-1]}'")
    alone = sorted(
        gold.claim_features(day3, day3.unionByName(history.where("ingest_date < DATE'2026-01-03'")), members).collect()
    )
    backfill = sorted(
        r for r in gold.claim_features(history, history, members).collect() if r["ingest_date"] == days[-1]
    )
    assert alone == backfill and len(alone) == 6
    assert {r["history_days"] for r in alone} == {3}
