"""Parsing a long range of landing days in one Spark plan (the single-run backfill of a quarter)."""

from datetime import date, timedelta
from pathlib import Path

from healthcare_assets.domain.landing import LINE_NUMBER, SOURCE_FILE
from healthcare_assets.domain.sources import MEDICAL_CLAIMS
from healthcare_assets.domain.synthetic import landing_file_path
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms.bronze import parse_landing

DAYS = 120  # a linear chain of unions broke past ~45 days (protobuf recursion limit of Spark Connect)


def _write_claims_file(landing_root: Path, day: date, claim_id: str) -> None:
    values = {name: "" for name in MEDICAL_CLAIMS.column_names}
    values.update(claim_id=claim_id, member_id="MCD1", claim_amount="1.00")
    path = landing_root / landing_file_path(MEDICAL_CLAIMS, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ",".join(MEDICAL_CLAIMS.column_names)
    path.write_text(f"{header}\n{','.join(values[name] for name in MEDICAL_CLAIMS.column_names)}\n")


def test_a_quarter_of_landing_days_parses_in_one_plan_with_every_file_and_day(spark, tmp_path: Path):
    days = [date(2026, 1, 1) + timedelta(days=offset) for offset in range(DAYS)]
    for number, day in enumerate(days):
        _write_claims_file(tmp_path, day, f"C{number:03d}")

    # the bronze asset checkpoints the parsed files (parse once, write to two tables)
    rows = parse_landing(spark, str(tmp_path), MEDICAL_CLAIMS, days).localCheckpoint().collect()

    assert sorted((r["claim_id"], r[PARTITION_COLUMN], r[SOURCE_FILE], r[LINE_NUMBER]) for r in rows) == [
        (f"C{number:03d}", day, Path(landing_file_path(MEDICAL_CLAIMS, day)).name, 2) for number, day in enumerate(days)
    ]


def test_a_landing_file_of_several_megabytes_parses_whole_with_one_header(spark, tmp_path: Path):
    """Sail's `wholetext` reader splits a file of over about a megabyte in two; every line must still be a row
    of its own file, numbered from the one header."""
    day = date(2026, 1, 21)
    values = {name: "" for name in MEDICAL_CLAIMS.column_names}
    values.update(member_id="MCD1", claim_amount="1.00", diagnosis_code="I10", procedure_code="99213")
    lines = [",".join(MEDICAL_CLAIMS.column_names)]
    for number in range(60_000):
        values["claim_id"] = f"C{number:06d}"
        lines.append(",".join(values[name] for name in MEDICAL_CLAIMS.column_names))
    path = tmp_path / landing_file_path(MEDICAL_CLAIMS, day)
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 2_000_000

    rows = parse_landing(spark, str(tmp_path), MEDICAL_CLAIMS, [day]).select("claim_id", LINE_NUMBER).collect()

    assert sorted((r["claim_id"], r[LINE_NUMBER]) for r in rows) == [
        (f"C{number:06d}", number + 2) for number in range(60_000)
    ]
