"""Claim-context features of gold.claim_features: resubmissions, lines per visit, price and coding norms."""

from datetime import date

import pytest

from assets_tests.test_transforms import DIM, SILVER_CLAIMS
from healthcare_assets.transforms import gold

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def _claim(claim_id, procedure, amount, received, provider="PRV1", diagnosis="E11.9", service=date(2025, 12, 30)):
    return (claim_id, "m1", provider, "internal_medicine", 12, "outpatient", diagnosis, procedure, service, service,
            amount, amount, received)  # fmt: skip


def test_context_features_see_resubmissions_visit_lines_prices_and_coding(spark):
    from decimal import Decimal

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
