"""Silver and gold transforms on hand-made rows, where every expected value is worked out by hand."""

from datetime import date
from decimal import Decimal

from healthcare_assets.domain.privacy import pseudonymise
from healthcare_assets.domain.sources import MEDICAL_CLAIMS, MEMBER_ELIGIBILITY
from healthcare_assets.settings import LOCAL_DEVELOPMENT_KEY
from healthcare_assets.transforms import gold, silver

KEY = LOCAL_DEVELOPMENT_KEY.encode()
D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
CLAIM_COLUMNS = ", ".join(f"{c} string" for c in MEDICAL_CLAIMS.column_names)
BRONZE_CLAIMS = f"{CLAIM_COLUMNS}, _source_file string, _line_number long, _ingested_at timestamp, ingest_date date"


def _bronze_claim(claim_id, member, start, amount, received, line=2, file="claims.csv", end=None):
    values = {
        "claim_id": claim_id,
        "member_id": member,
        "patient_dob": "1980-05-06",
        "provider_id": "PRV1",
        "provider_specialty": "cardiology",
        "provider_experience_years": "12",
        "claim_type": "outpatient",
        "diagnosis_code": "I10",
        "procedure_code": "93000",
        "service_start_date": start,
        "service_end_date": end or start,
        "claim_amount": amount,
        "paid_amount": "10.00",
    }
    return (*[values[c] for c in MEDICAL_CLAIMS.column_names], file, line, None, received)


def test_silver_claims_are_typed_deduplicated_and_pseudonymised(spark):
    bronze = spark.createDataFrame(
        [
            _bronze_claim("C1", "MCD1", "2026-01-01", "100.10", D1, line=2),
            _bronze_claim("C1", "MCD1", "2026-01-01", "100.10", D1, line=7),  # duplicate line
            _bronze_claim("C2", "MCD2", "2026-01-01", "55.00", D1, line=3),
        ],
        BRONZE_CLAIMS,
    )
    rows = {r["claim_id"]: r for r in silver.medical_claims(bronze, KEY).collect()}
    assert set(rows) == {"C1", "C2"}
    assert rows["C1"]["_line_number"] == 2  # the first delivery is kept
    assert rows["C1"]["claim_amount"] == Decimal("100.10")
    assert rows["C1"]["service_start_date"] == D1
    assert rows["C1"]["member_key"] == pseudonymise("MCD1", KEY)
    assert "member_id" not in rows["C1"] and "patient_dob" not in rows["C1"]


def test_records_already_stored_for_an_earlier_day_are_dropped(spark):
    stored = silver.medical_claims(
        spark.createDataFrame([_bronze_claim("C1", "MCD1", "2026-01-01", "1", D1)], BRONZE_CLAIMS), KEY
    )
    incoming = silver.medical_claims(
        spark.createDataFrame(
            [
                _bronze_claim("C1", "MCD1", "2026-01-01", "1", D2),
                _bronze_claim("C3", "MCD1", "2026-01-02", "1", D2),
            ],
            BRONZE_CLAIMS,
        ),
        KEY,
    )
    kept = silver.drop_earlier_deliveries(incoming, stored, MEDICAL_CLAIMS, D2)
    assert [r["claim_id"] for r in kept.collect()] == ["C3"]
    # rerunning the earlier day itself keeps its own records
    assert silver.drop_earlier_deliveries(stored, stored, MEDICAL_CLAIMS, D1).count() == 1


def test_eligibility_keeps_birth_year_only_and_folds_ages_over_89(spark):
    columns = ", ".join(f"{c} string" for c in MEMBER_ELIGIBILITY.column_names)
    record = {
        "member_id": "MCD1",
        "first_name": "Ann",
        "last_name": "Lee",
        "gender": "F",
        "street_address": "1 Elm St",
        "city": "Springfield",
        "zip_code": "12345",
        "geographic_region": "Central",
        "plan_code": "MCD-ABD",
        "maintenance_type": "ADD",
        "eligibility_start_date": "2020-01-01",
        "eligibility_end_date": None,
        "bmi": "31.5",
        "smoker": "N",
    }
    rows = [
        tuple({**record, "date_of_birth": "1990-03-04"}[c] for c in MEMBER_ELIGIBILITY.column_names),
        tuple(
            {**record, "member_id": "MCD2", "date_of_birth": "1920-03-04"}[c] for c in MEMBER_ELIGIBILITY.column_names
        ),
    ]
    bronze = spark.createDataFrame(
        [(*r, "e.csv", i, None, D1) for i, r in enumerate(rows, start=2)],
        f"{columns}, _source_file string, _line_number long, _ingested_at timestamp, ingest_date date",
    )
    result = {r["member_key"]: r for r in silver.member_eligibility(bronze, KEY).collect()}
    assert result[pseudonymise("MCD1", KEY)]["birth_year"] == 1990
    assert result[pseudonymise("MCD2", KEY)]["birth_year"] == 2026 - 90
    assert result[pseudonymise("MCD1", KEY)]["address_key"] == pseudonymise("1 Elm St|Springfield|12345", KEY)
    assert not {"first_name", "last_name", "date_of_birth", "street_address", "city", "zip_code"} & set(
        result[pseudonymise("MCD1", KEY)].asDict()
    )


SILVER_CLAIMS = (
    "claim_id string, member_key string, provider_id string, provider_specialty string, "
    "provider_experience_years int, claim_type string, diagnosis_code string, procedure_code string, "
    "service_start_date date, service_end_date date, claim_amount decimal(12,2), paid_amount decimal(12,2), "
    "ingest_date date"
)
DIM = (
    "member_key string, version int, gender string, birth_year int, geographic_region string, plan_code string, "
    "effective_from date, effective_to date, is_current_record boolean"
)


def _claim(claim_id, member, start, amount, received, end=None, claim_type="outpatient"):
    return (
        claim_id,
        member,
        "PRV1",
        "cardiology",
        12,
        claim_type,
        "I10",
        "93000",
        start,
        end or start,
        Decimal(amount),
        Decimal("1.00"),
        received,
    )


def test_claim_features_use_only_claims_received_before_each_claim(spark):
    history = spark.createDataFrame(
        [
            _claim("A1", "m1", date(2025, 12, 20), "100.00", D1),
            _claim("A2", "m1", date(2025, 12, 30), "300.00", D2),
            _claim("A3", "m1", date(2025, 12, 25), "50.00", D3, end=date(2025, 12, 28), claim_type="inpatient"),
            _claim("B1", "m2", date(2025, 12, 31), "80.00", D3),
        ],
        SILVER_CLAIMS,
    )
    members = spark.createDataFrame(
        [
            ("m1", 1, "F", 1980, "Central", "MCD-TANF", date(2020, 1, 1), date(2025, 12, 26), False),
            ("m1", 2, "F", 1980, "Northeast", "MCD-TANF", date(2025, 12, 27), None, True),
            ("m2", 1, "M", 2015, "Southeast", "MCD-CHIP", date(2026, 1, 5), None, True),
        ],
        DIM,
    )
    day3 = history.where("ingest_date = DATE'2026-01-03'")
    rows = {r["claim_id"]: r for r in gold.claim_features(day3, history, members).collect()}
    a3 = rows["A3"]
    assert a3["history_days"] == 3  # days 1..3 hold received claims
    assert a3["claim_rate_30d"] == 20.0 and a3["claim_rate_90d"] == 60.0  # 2 earlier claims in 3 days of history
    assert a3["amount_to_member_mean"] == 0.25  # 50 / mean(100, 300)
    assert a3["days_since_last_claim"] == 0  # its service date is before the latest known one
    assert a3["claim_duration_days"] == 3
    assert a3["geographic_region"] == "Central"  # the member version valid on 2025-12-25
    assert a3["patient_age"] == 45 and a3["patient_age_group"] == "35-49"  # 1980-07-01 .. 2025-12-25
    b1 = rows["B1"]
    assert b1["claim_rate_30d"] == 0.0 and b1["claim_rate_90d"] == 0.0
    assert b1["amount_to_member_mean"] is None and b1["days_since_last_claim"] is None  # a first claim
    assert b1["geographic_region"] == "Southeast"  # service before the first version: the first version
    assert b1["patient_age_group"] == "0-17"


def test_member_features_flag_chronic_conditions_from_diagnoses_and_drugs(spark):
    members = spark.createDataFrame(
        [
            ("m1", 2, "F", 1950, "Central", "MCD-ABD", date(2020, 1, 1), None, True),
            ("m2", 1, "M", 2010, "Central", "MCD-CHIP", date(2020, 1, 1), None, True),
            ("m1", 1, "F", 1950, "Northeast", "MCD-ABD", date(2019, 1, 1), date(2019, 12, 31), False),
        ],
        DIM,
    ).selectExpr("*", "28.5 AS bmi", "'Y' AS smoker", "'active' AS enrollment_status")
    claims = spark.createDataFrame(
        [
            _claim("C1", "m1", date(2025, 12, 1), "100.00", D1),
            _claim("C2", "m1", date(2025, 12, 2), "50.00", D1, claim_type="emergency"),
            _claim("C0", "m1", date(2024, 6, 1), "999.00", D1),  # older than 12 months: not counted
        ],
        SILVER_CLAIMS,
    )
    rx = spark.createDataFrame(
        [("R1", "m2", date(2025, 11, 1), "antidepressant", Decimal("20.00"), date(2025, 11, 2))],
        "rx_claim_id string, member_key string, fill_date date, drug_class string, rx_amount decimal(12,2), "
        "ingest_date date",
    )
    immunizations = spark.createDataFrame(
        [("I1", "m2", "FLU", date(2025, 10, 1), date(2025, 10, 2)), ("I2", "m2", "HPV", date(2025, 10, 1), D3)],
        "immunization_id string, member_key string, vaccine_code string, administered_date date, ingest_date date",
    )
    rows = {r["member_key"]: r for r in gold.member_features(members, claims, rx, immunizations, D3).collect()}
    assert set(rows) == {"m1", "m2"}
    m1, m2 = rows["m1"], rows["m2"]
    assert m1["has_hypertension"] and not m1["has_depression"]
    assert m1["num_claims"] == 2 and m1["num_er_visits"] == 1 and m1["total_claim_amount"] == Decimal("150.00")
    assert m1["age"] == 76 and m1["age_group"] == "65+" and m1["is_smoker"]
    assert m1["geographic_region"] == "Central"
    assert m2["has_depression"] and m2["chronic_condition_count"] == 1
    assert m2["num_claims"] == 0 and m2["total_cost"] == Decimal("20.00")
    assert m2["vaccines_received"] == ["FLU", "HPV"] and m2["last_flu_vaccine_date"] == date(2025, 10, 1)


def test_reconciliation_reports_the_difference_per_day():
    from healthcare_assets.transforms.quality import reconcile

    per_day = reconcile(landed={D1: 10, D2: 5}, bronze={D1: 9, D2: 5}, quarantined={D1: 1})
    assert per_day == {
        "2026-01-01": {"landing": 10, "bronze": 9, "quarantine": 1, "difference": 0},
        "2026-01-02": {"landing": 5, "bronze": 5, "quarantine": 0, "difference": 0},
    }
    assert reconcile(landed={D1: 3}, bronze={D1: 1}, quarantined={})["2026-01-01"]["difference"] == 2
