"""Bad landing input, end to end: every bad line is quarantined with its reason, every unusable file fails the run.

Row-level problems (one line is wrong) go to `bronze.quarantine` and the day goes on;
landing lines = bronze rows + quarantined rows for every feed and day. File-level
problems (the file as a whole cannot be read against its contract: not UTF-8, no
header, a contract column missing or renamed, a repeated column) fail the run before
any table is written, with a message naming feed, day, file and problem, never a value.
"""

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from assets_tests.phi_scan import run_texts
from assets_tests.pipeline import Pipeline, check_results
from healthcare_assets.assets.bronze import BRONZE_KEYS, QUARANTINE_KEY
from healthcare_assets.assets.landing import synthetic_landing_feeds
from healthcare_assets.domain.landing import landing_file_problem
from healthcare_assets.domain.sources import MEDICAL_CLAIMS, SOURCES
from healthcare_assets.transforms.bronze import count_landing_lines

DAY = date(2026, 1, 1)
BRONZE = [*BRONZE_KEYS.values(), QUARANTINE_KEY]
LANDING = list(synthetic_landing_feeds.keys)  # the generator writes every feed in one step
CLAIM = {
    "claim_id": "CLMX0001",
    "member_id": "MCD900000001",
    "patient_dob": "1980-02-03",
    "provider_id": "PRV1",
    "provider_specialty": "cardiology",
    "provider_experience_years": "12",
    "claim_type": "outpatient",
    "diagnosis_code": "I10",
    "procedure_code": "93000",
    "service_start_date": "2025-12-30",
    "service_end_date": "2025-12-30",
    "claim_amount": "120.50",
    "paid_amount": "100.00",
}
# Additive schema drift: columns in another order plus one the contract does not know.
DRIFTED_HEADER = list(reversed(MEDICAL_CLAIMS.column_names)) + ["submitter_note"]


def _claim_line(**changes: str) -> str:
    values = {**CLAIM, "submitter_note": "n/a", **changes}
    return ",".join(values[name] for name in DRIFTED_HEADER)


# (line as delivered, expected quarantine reason prefix or None for a valid line); line numbers follow the header
CLAIM_CASES = [
    (_claim_line(), None),
    (_claim_line(claim_id="CLMX0002", submitter_note=""), None),
    ('CLMX9,"MCD900000009,1980-01-01', "malformed:"),  # unbalanced quote
    ("CLMX8,MCD900000008", "malformed: expected 14 fields, found 2"),
    ("", "malformed: blank line"),
    (_claim_line(claim_id=""), "missing_key: claim_id is empty"),
    (_claim_line(claim_amount="N/A"), "wrong_type: claim_amount is not a valid amount"),
    (_claim_line(provider_experience_years="12.5"), "wrong_type: provider_experience_years is not a valid integer"),
    (_claim_line(service_start_date="20251230"), "wrong_type: service_start_date"),
    (_claim_line(service_start_date="2025-02-30"), "wrong_type: service_start_date"),  # impossible date
    (_claim_line(service_start_date="2026-03-01", service_end_date="2026-03-01"), "future_date: service_start_date"),
    (_claim_line(service_end_date="2025-12-29"), "out_of_range: service_end_date before service_start_date"),
    (_claim_line(claim_amount="-3.00", paid_amount="0"), "out_of_range: claim_amount below 0"),
    (_claim_line(claim_amount="1e12"), "out_of_range: claim_amount above"),  # huge amount
    (_claim_line(provider_experience_years="9" * 400), "wrong_type: provider_experience_years"),  # beyond 64 bits
    (_claim_line(paid_amount="130.00"), "out_of_range: paid_amount above claim_amount"),
    (_claim_line(provider_specialty="astrology"), "unknown_code: provider_specialty"),
    (_claim_line(procedure_code="9300X"), "unknown_code: procedure_code"),
    (_claim_line(submitter_note="x" * 200_000), "malformed: field larger than field limit"),  # huge field
]
# A quoted newline splits one record over two physical lines: both are quarantined, nothing is glued together.
SPLIT_RECORD = _claim_line(submitter_note='"two\nlines"').split("\n")

RX = {
    "rx_claim_id": "RXX0001",
    "member_id": "MCD900000001",
    "fill_date": "2025-12-30",
    "ndc_code": "12345-6789-01",
    "drug_class": "statin",
    "days_supply": 30,
    "quantity": 30.0,
    "rx_amount": 12.5,
}
RX_CASES = [
    (json.dumps({**RX, "pharmacy_note": "extra keys are ignored"}), None),
    ('{"rx_claim_id": "RXX0002", "member_id"', "malformed: invalid JSON"),
    ("[1, 2]", "malformed: a line is not a JSON object"),
    (json.dumps({k: v for k, v in RX.items() if k != "rx_amount"}), "missing_key: rx_amount is empty"),
    (json.dumps({**RX, "days_supply": "thirty"}), "wrong_type: days_supply is not a valid integer"),
    (json.dumps({**RX, "rx_amount": -1}), "out_of_range: rx_amount below 0"),
    (json.dumps({**RX, "rx_amount": 0}).replace('"rx_amount": 0', '"rx_amount": 1e400'), "wrong_type: rx_amount"),
    (json.dumps({**RX, "rx_amount": 1e300}), "out_of_range: rx_amount above"),
    (json.dumps({**RX, "drug_class": "placebo"}), "unknown_code: drug_class"),
]


def _failure_message(result) -> str:
    failures = result.get_step_failure_events()
    assert failures, "the run was expected to fail"
    return failures[0].step_failure_data.user_failure_data.description


def _versions(pipeline: Pipeline) -> dict[str, int]:
    return {"/".join(k.path): DeltaTable(pipeline.table(*k.path)).version() for k in BRONZE}


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """Day 1 of generated feeds plus a file of crafted bad lines per feed, ingested into bronze once."""
    pipeline = Pipeline(tmp_path_factory.mktemp("lakehouse"))
    assert pipeline.run(DAY, selection=LANDING).success
    root = Path(pipeline.settings.landing_root)
    claims = [line for line, _ in CLAIM_CASES] + SPLIT_RECORD
    # a byte order mark before the header is tolerated (spreadsheet exports write one)
    (root / "medical_claims" / DAY.isoformat() / "claims_crafted.csv").write_text(
        "\ufeff" + "\n".join([",".join(DRIFTED_HEADER), *claims]) + "\n", encoding="utf-8"
    )
    (root / "pharmacy_claims" / DAY.isoformat() / "rx_crafted.jsonl").write_text(
        "\n".join(line for line, _ in RX_CASES) + "\n"
    )
    pipeline.result = pipeline.run(DAY, selection=BRONZE)
    return pipeline


def _stored(pipeline: Pipeline, table: str):
    return DeltaTable(pipeline.table("bronze", table)).to_pandas()


@pytest.mark.parametrize(
    "feed, file_name, cases, first_line",
    [
        ("medical_claims", "claims_crafted.csv", CLAIM_CASES, 2),
        ("pharmacy_claims", "rx_crafted.jsonl", RX_CASES, 1),
    ],
)
def test_each_bad_line_is_quarantined_with_its_reason_and_good_lines_reach_bronze(
    landed, feed, file_name, cases, first_line
):
    assert landed.result.success
    quarantine = _stored(landed, "quarantine")
    quarantine = quarantine[(quarantine["source"] == feed) & (quarantine["_source_file"] == file_name)]
    reasons = dict(zip(quarantine["_line_number"], quarantine["reason"], strict=True))
    bronze = _stored(landed, feed)
    valid_lines = set(bronze.loc[bronze["_source_file"] == file_name, "_line_number"])
    for number, (line, expected) in enumerate(cases, start=first_line):
        if expected is None:
            assert number in valid_lines and number not in reasons, line[:80]
        else:
            assert reasons[number].startswith(expected), (line[:80], reasons.get(number))
            assert number not in valid_lines
    raw = dict(zip(quarantine["_line_number"], quarantine["_raw_record"], strict=True))
    assert raw[first_line + 2] == cases[2][0]  # the raw line is kept for repair


def test_a_record_split_by_a_quoted_newline_quarantines_both_physical_lines(landed):
    quarantine = _stored(landed, "quarantine")
    split = quarantine[quarantine["_line_number"] > len(CLAIM_CASES) + 1]
    split = split[split["_source_file"] == "claims_crafted.csv"]
    assert len(split) == 2 and all(split["reason"].str.startswith("malformed:"))


def test_nothing_is_lost_landing_lines_equal_bronze_plus_quarantine_for_every_feed(landed):
    quarantine = _stored(landed, "quarantine")
    for name, source in SOURCES.items():
        landed_lines = count_landing_lines(landed.settings.landing_root, source, DAY)
        assert landed_lines == len(_stored(landed, name)) + int((quarantine["source"] == name).sum()), name
    checks = check_results(landed.result)
    assert all(checks[(f"bronze/{name}", "landing_reconciles")].passed for name in SOURCES)


def test_quarantine_reasons_name_rules_and_columns_never_values(landed):
    reasons = " ".join(_stored(landed, "quarantine")["reason"])
    for value in ("MCD900000001", "CLMX0001", "astrology", "9300X", "N/A", "placebo", "thirty", "1e12"):
        assert value not in reasons


def _latin1_eligibility(path: Path) -> None:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[1].split(",")
    fields[header.index("first_name")] = "Jos\u00e9"
    path.write_bytes(("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n").encode("latin-1"))


def _rename(column: str, to: str):
    def edit(path: Path) -> None:
        lines = path.read_text().splitlines()
        header = [to if name == column else name for name in lines[0].split(",")]
        path.write_text("\n".join([",".join(header), *lines[1:]]) + "\n")

    return edit


def _repeat_column(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].replace("claim_type", "claim_id"), *lines[1:]]) + "\n")


# (feed, edit of that feed's generated file, words the message must contain)
FILE_CASES = {
    "required_column_renamed": (
        "medical_claims",
        _rename("claim_amount", "amount_billed"),
        ["claim_amount", "amount_billed"],
    ),
    "optional_column_renamed": ("medical_claims", _rename("paid_amount", "amount_paid"), ["paid_amount", "renamed"]),
    "repeated_column": ("medical_claims", _repeat_column, ["repeats", "claim_id"]),
    "empty_csv_file": ("immunizations", lambda path: path.write_bytes(b""), ["no header line"]),
    "not_utf8": ("member_eligibility", _latin1_eligibility, ["not valid UTF-8", "line 2"]),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_an_unusable_file_fails_the_run_naming_feed_day_and_file_but_no_content(landed, case):
    feed, edit, words = FILE_CASES[case]
    folder = Path(landed.settings.landing_root) / feed / DAY.isoformat()
    generated = sorted(p for p in folder.iterdir() if "crafted" not in p.name)[0]
    original = generated.read_bytes()
    before = _versions(landed)
    try:
        edit(generated)
        result = landed.run(DAY, selection=BRONZE)
    finally:
        generated.write_bytes(original)
    assert not result.success
    message = _failure_message(result)
    for word in [feed, DAY.isoformat(), generated.name, "redeliver", *words]:
        assert word in message, (word, message)
    assert _versions(landed) == before  # nothing of the run was written
    # no value of the rejected file appears anywhere in the run's events (messages, metadata)
    identifiers = {line.split(",")[0] for line in original.decode("latin-1").splitlines()[1:4]}
    texts = "\n".join(run_texts(landed.instance, result.run_id))
    assert not [value for value in identifiers | {"Jos"} if value and value in texts]


def test_the_file_level_rules_accept_header_only_csv_and_empty_json_lines():
    header_only = (",".join(MEDICAL_CLAIMS.column_names) + "\n").encode()
    assert landing_file_problem(header_only, MEDICAL_CLAIMS) is None
    assert landing_file_problem(b"", SOURCES["pharmacy_claims"]) is None
    assert "no header line" in landing_file_problem(b"\n", MEDICAL_CLAIMS)


def test_an_empty_delivery_ingests_as_zero_rows(tmp_path):
    pipeline = Pipeline(tmp_path)
    assert pipeline.run(DAY, selection=LANDING).success
    root = Path(pipeline.settings.landing_root)
    immunizations = next((root / "immunizations" / DAY.isoformat()).iterdir())
    immunizations.write_text(immunizations.read_text().splitlines()[0] + "\n")  # header only
    rx = next((root / "pharmacy_claims" / DAY.isoformat()).iterdir())
    rx.write_bytes(b"")
    result = pipeline.run(DAY, selection=BRONZE)
    assert result.success
    assert len(DeltaTable(pipeline.table("bronze", "immunizations")).to_pandas()) == 0
    assert len(DeltaTable(pipeline.table("bronze", "pharmacy_claims")).to_pandas()) == 0
    assert check_results(result)[("bronze/immunizations", "landing_reconciles")].passed


def test_redelivered_files_are_kept_in_bronze_but_never_double_counted_downstream(tmp_path):
    pipeline = Pipeline(tmp_path)
    d2 = date(2026, 1, 2)
    keys = pipeline.defs.resolve_all_asset_keys()
    silver = [k for k in keys if k.path[0] == "silver"]
    assert pipeline.run(DAY, d2, selection=[*LANDING, *BRONZE, *silver]).success
    before = {
        name: len(DeltaTable(pipeline.table("silver", name)).to_pandas())
        for name in ("medical_claims", "immunizations")
    }
    root = Path(pipeline.settings.landing_root)
    for name in ("medical_claims", "immunizations"):
        first = next((root / name / DAY.isoformat()).iterdir())
        # the same file again the same day under another name, and once more the next day
        shutil.copy(first, first.with_name("redelivered_" + first.name))
        shutil.copy(first, root / name / d2.isoformat() / ("redelivered_" + first.name))
    result = pipeline.run(DAY, d2, selection=[*BRONZE, *silver])
    assert result.success
    checks = check_results(result)
    for name in ("medical_claims", "immunizations"):
        assert len(DeltaTable(pipeline.table("silver", name)).to_pandas()) == before[name]
        assert checks[(f"bronze/{name}", "landing_reconciles")].passed
        assert checks[(f"silver/{name}", "primary_key_unique")].passed
