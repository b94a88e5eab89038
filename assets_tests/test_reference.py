"""The DuckDB reference implementation of landing -> gold.claim_features gives the pipeline's rows.

The benchmark compares the two side by side, so they must do the same work: the same bronze rows and quarantined
lines, the same silver claims and the same claim features, row for row, on a generated window with bad lines.
"""

import json
import math
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

import benchmarks
from assets_tests.pipeline import Pipeline
from benchmarks import reference
from benchmarks.report import render
from healthcare_assets.settings import pseudonymisation_key

START = date(2026, 1, 1)
DAYS = 35  # past the 30-day rate window, with the roster day's enrolment and daily changes
END = START + timedelta(days=DAYS - 1)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def _rows(table, columns: list[str], key: list[str]) -> list[tuple]:
    rows = [tuple(row[c] for c in columns) for row in table.select(columns).to_pylist()]
    positions = [columns.index(k) for k in key]
    return sorted(rows, key=lambda row: tuple(row[p] for p in positions))


def _assert_same_rows(stored, expected, columns: list[str], key: list[str]) -> None:
    ours, theirs = _rows(stored, columns, key), _rows(expected, columns, key)
    assert len(ours) == len(theirs)
    different = [(a, b) for a, b in zip(ours, theirs, strict=True) if not all(map(_same, a, b))]
    assert not different, different[:3]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("lakehouse"))
    selection = [
        key
        for key in pipeline.defs.resolve_all_asset_keys()
        if key.path[0] in ("landing", "bronze")
        or key.path in (["silver", "medical_claims"], ["silver", "member_eligibility"], ["silver", "dim_members"])
        or key.path == ["gold", "claim_features"]
        or key.path
        in (["gold", "member_claims_daily"], ["gold", "procedure_prices_daily"], ["gold", "coding_pairs_daily"])
    ]
    assert pipeline.run(START, END, selection=selection).success
    con = duckdb.connect()
    days = [START + timedelta(days=n) for n in range(DAYS)]
    out = tmp_path_factory.mktemp("reference")
    steps = reference.run(con, pipeline.settings.landing_root, days, pseudonymisation_key("local"), Path(out))
    return pipeline, con, steps


def _stored(pipeline: Pipeline, *path: str):
    return DeltaTable(pipeline.table(*path)).to_pyarrow_table()


def test_the_reference_claim_features_equal_the_pipelines_row_for_row(both):
    pipeline, con, steps = both
    stored = _stored(pipeline, "gold", "claim_features")
    expected = con.sql("SELECT * FROM gold_claim_features").fetch_arrow_table()
    assert len(stored) > DAYS * 50 and steps["gold"]["rows"]["gold_claim_features"] == len(stored)
    assert sorted(expected.column_names) == sorted(stored.column_names)
    _assert_same_rows(stored, expected, stored.column_names, ["claim_id"])


@pytest.mark.parametrize("feed", ["medical_claims", "member_eligibility", "immunizations"])
def test_the_reference_bronze_and_quarantine_equal_the_pipelines(both, feed):
    pipeline, con, _ = both
    bronze = _stored(pipeline, "bronze", feed)
    columns = [c for c in bronze.column_names if c != "_ingested_at"]
    _assert_same_rows(
        bronze, con.sql(f"SELECT * FROM bronze_{feed}").fetch_arrow_table(), columns, ["_source_file", "_line_number"]
    )
    quarantine = _stored(pipeline, "bronze", "quarantine")
    quarantine = quarantine.filter(pc.equal(quarantine["source"], feed))
    lines = ["_source_file", "_line_number", "_raw_record"]
    expected = con.sql(f"SELECT * FROM quarantine_{feed}").fetch_arrow_table()
    assert len(quarantine) > 0
    _assert_same_rows(quarantine, expected, lines, ["_source_file", "_line_number"])
    # same reason for every line the reference reads the pipeline's way (it calls every quoted line malformed)
    reasons = {(r["_source_file"], r["_line_number"]): r["reason"] for r in quarantine.to_pylist()}
    for row in expected.to_pylist():
        if row["reason"] != "malformed: quoted field":
            assert reasons[row["_source_file"], row["_line_number"]] == row["reason"], row["_raw_record"][:40]


def test_the_reference_silver_claims_equal_the_pipelines(both):
    pipeline, con, _ = both
    stored = _stored(pipeline, "silver", "medical_claims")
    expected = con.sql("SELECT * FROM silver_medical_claims").fetch_arrow_table()
    assert sorted(expected.column_names) == sorted(stored.column_names)
    _assert_same_rows(stored, expected, stored.column_names, ["claim_id"])


def test_the_side_by_side_section_pairs_each_step_with_the_pipelines_steps_and_judges_the_ratio(tmp_path: Path):
    shutil.copy(Path(benchmarks.__file__).parent / "results" / "pipeline_small.json", tmp_path)
    pipeline_run = json.loads((tmp_path / "pipeline_small.json").read_text())["end_to_end"]
    steps = {
        "bronze": {"seconds": 2.0, "rows": {"bronze_medical_claims": 10, "quarantine_medical_claims": 1}},
        "silver": {"seconds": 100.0, "rows": {"silver_medical_claims": 9}},
        "gold": {"seconds": 0.5, "rows": {"gold_claim_features": 9}},
    }
    rows = {row["step"]: row for row in reference.side_by_side(pipeline_run, steps)}
    durations = {step["step"]: step["seconds"] for step in pipeline_run["steps"]}
    silver_seconds = sum(durations[name] for name in reference.PIPELINE_STEPS["silver"])
    assert rows["silver"]["pipeline_seconds"] == round(silver_seconds, 3)
    assert rows["bronze"]["ratio"] == round(durations["bronze_ingestion"] / 2.0, 2)
    assert rows["bronze"]["reference_rows"] == 11

    (tmp_path / "reference_small.json").write_text(
        json.dumps({"engine": "duckdb 2.0.0", "steps": steps, "side_by_side": list(rows.values())})
    )
    markdown, data = render(tmp_path)
    assert "## 2b. Side by side" in markdown and data["reference"]["small"]["steps"] == steps
    section = markdown.split("## 2b. Side by side", 1)[1].split("\n## ", 1)[0]
    bronze_line = next(line for line in section.splitlines() if line.startswith("| small | bronze |"))
    assert f"| {rows['bronze']['ratio']} | **missed** (target ≤ 3.0) |" in bronze_line
    assert "| small | silver |" in section and "**met** (≤ 3.0)" in section
