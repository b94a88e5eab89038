"""The landing parser never drops a line: each is valid or carries the first rule it breaks."""

import json
from datetime import date

import pytest

from healthcare_assets.domain.landing import LINE_NUMBER, RAW_RECORD, REASON, parse_landing_file
from healthcare_assets.domain.sources import IMMUNIZATIONS, MEDICAL_CLAIMS, PHARMACY_CLAIMS

RECEIVED = date(2026, 1, 10)
HEADER = ",".join(MEDICAL_CLAIMS.column_names)
GOOD = "CLM1,MCD000000001,1980-02-03,PRV1,cardiology,12,outpatient,I10,93000,2026-01-05,2026-01-05,120.50,100.00"


def _claims(*lines: str):
    return parse_landing_file("\n".join([HEADER, *lines]) + "\n", MEDICAL_CLAIMS, "claims.csv", RECEIVED)


def test_a_valid_line_keeps_its_values_as_received():
    frame = _claims(GOOD)
    row = frame.iloc[0]
    assert row[REASON] is None
    assert row["claim_amount"] == "120.50"
    assert row[LINE_NUMBER] == 2
    assert row[RAW_RECORD] == GOOD


@pytest.mark.parametrize(
    "line, expected",
    [
        (GOOD.replace("CLM1", "", 1), "missing_key: claim_id is empty"),
        (GOOD.replace("120.50", "N/A"), "wrong_type: claim_amount is not a valid amount"),
        (GOOD.replace("2026-01-05,2026-01-05", "2026-02-30,2026-02-30"), "wrong_type: service_start_date"),
        (GOOD.replace("2026-01-05,2026-01-05", "20260105,20260105"), "wrong_type: service_start_date"),
        (GOOD.replace(",12,", ",12.5,"), "wrong_type: provider_experience_years is not a valid integer"),
        (GOOD.replace("120.50", "-3"), "out_of_range: claim_amount below 0"),
        (GOOD.replace("120.50", "1e12"), "out_of_range: claim_amount above"),
        (GOOD.replace("cardiology", "astrology"), "unknown_code: provider_specialty"),
        (GOOD.replace("93000", "9300X"), "unknown_code: procedure_code"),
        (GOOD.replace("2026-01-05,2026-01-05", "2026-01-11,2026-01-11"), "future_date: service_start_date"),
        (GOOD.replace("2026-01-05,2026-01-05", "2026-01-05,2026-01-04"), "out_of_range: service_end_date before"),
        ('CLM2,"MCD000000002,1980-01-01', "malformed:"),
        ("CLM3,MCD000000003", "malformed: expected 13 fields, found 2"),
        ("", "malformed: blank line"),
        (GOOD.replace("120.50", "inf"), "wrong_type: claim_amount"),
    ],
)
def test_each_broken_rule_quarantines_the_line_with_its_reason(line, expected):
    frame = _claims(GOOD, line)
    assert frame.iloc[0][REASON] is None
    assert frame.iloc[1][REASON].startswith(expected)
    assert frame.iloc[1][RAW_RECORD] == line
    assert list(frame[LINE_NUMBER]) == [2, 3]


def test_empty_optional_fields_are_null_not_errors():
    frame = _claims(GOOD.replace(",100.00", ",").replace(",12,", ",,"))
    assert frame.iloc[0][REASON] is None
    assert frame.iloc[0]["paid_amount"] is None


def test_header_missing_a_contract_column_is_a_file_problem_not_a_row_problem():
    header = HEADER.replace("claim_amount", "amount_billed")
    with pytest.raises(ValueError, match="lacks contract column"):
        parse_landing_file(f"{header}\n{GOOD}\n{GOOD}\n", MEDICAL_CLAIMS, "claims.csv", RECEIVED)


def test_columns_may_come_in_any_order_and_extra_columns_are_ignored():
    columns = list(reversed(IMMUNIZATIONS.column_names)) + ["lot_number"]
    values = {
        "immunization_id": "IMM1",
        "member_id": "MCD1",
        "vaccine_code": "FLU",
        "administered_date": "2026-01-02",
        "provider_id": "PRV9",
        "lot_number": "L-77",
    }
    text = ",".join(columns) + "\n" + ",".join(values[c] for c in columns) + "\n"
    frame = parse_landing_file(text, IMMUNIZATIONS, "imm.csv", RECEIVED)
    assert frame.iloc[0][REASON] is None
    assert frame.iloc[0]["vaccine_code"] == "FLU"
    assert "lot_number" not in frame.columns


def test_header_only_and_empty_files_give_no_rows():
    assert len(parse_landing_file(HEADER + "\n", MEDICAL_CLAIMS, "c.csv", RECEIVED)) == 0
    assert len(parse_landing_file("", MEDICAL_CLAIMS, "c.csv", RECEIVED)) == 0


def test_windows_line_endings_are_accepted():
    frame = parse_landing_file(f"{HEADER}\r\n{GOOD}\r\n", MEDICAL_CLAIMS, "c.csv", RECEIVED)
    assert frame.iloc[0][REASON] is None and frame.iloc[0]["paid_amount"] == "100.00"


def test_json_lines_parse_numbers_and_flag_broken_objects():
    good = {
        "rx_claim_id": "RX1",
        "member_id": "MCD1",
        "fill_date": "2026-01-03",
        "ndc_code": "12345-6789-01",
        "drug_class": "statin",
        "days_supply": 30,
        "quantity": 30.0,
        "rx_amount": 12.5,
    }
    lines = [json.dumps(good), '{"rx_claim_id": "RX2", "member_id"', "[1, 2]", json.dumps({**good, "days_supply": 0})]
    frame = parse_landing_file("\n".join(lines) + "\n", PHARMACY_CLAIMS, "rx.jsonl", RECEIVED)
    assert frame.iloc[0][REASON] is None and frame.iloc[0]["days_supply"] == "30"
    assert frame.iloc[1][REASON].startswith("malformed: invalid JSON")
    assert frame.iloc[2][REASON] == "malformed: a line is not a JSON object"
    assert frame.iloc[3][REASON] == "out_of_range: days_supply below 1"
    assert list(frame[LINE_NUMBER]) == [1, 2, 3, 4]


def test_quarantine_reasons_never_contain_field_values():
    frame = _claims(GOOD.replace("120.50", "MCD000000001"))
    assert "MCD000000001" not in frame.iloc[0][REASON]
