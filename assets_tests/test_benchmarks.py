"""The benchmark runner's own logic: the pandas baseline equals the Spark transform; the report's sections."""

import json
import shutil
from datetime import date
from pathlib import Path

from deltalake import DeltaTable

import benchmarks
from benchmarks.pipeline import incremental, median_run, throughput
from benchmarks.report import NOT_MEASURED, render
from benchmarks.sail_vs_pandas import pandas_medical_claims, same_table
from healthcare_assets.domain.sources import MEDICAL_CLAIMS
from healthcare_assets.resources.delta import TableRef
from healthcare_assets.settings import LOCAL_DEVELOPMENT_KEY
from healthcare_assets.transforms import silver

KEY = LOCAL_DEVELOPMENT_KEY.encode()
BRONZE_CLAIMS = ", ".join(f"{c} string" for c in MEDICAL_CLAIMS.column_names) + (
    ", _source_file string, _line_number long, _ingested_at timestamp, ingest_date date"
)


def _claim(claim_id, member, amount, file, line, received, dob="1980-05-06", paid="10.00", experience="12"):
    values = {
        "claim_id": claim_id,
        "member_id": member,
        "patient_dob": dob,
        "provider_id": "PRV1",
        "provider_specialty": "cardiology",
        "provider_experience_years": experience,
        "claim_type": "outpatient",
        "diagnosis_code": "I10",
        "procedure_code": "93000",
        "service_start_date": "2026-01-01",
        "service_end_date": "2026-01-02",
        "claim_amount": amount,
        "paid_amount": paid,
    }
    return (*[values[c] for c in MEDICAL_CLAIMS.column_names], file, line, None, received)


def test_pandas_baseline_gives_the_silver_claims_transform_result(spark, storage):
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    rows = [
        _claim("C1", "MCD1", "100.10", "claims_20260102.csv", 2, d2),  # re-delivered: the earlier file wins
        _claim("C1", "MCD1", "999.99", "claims_20260101.csv", 9, d1),
        _claim("C2", "MCD2", "55.00", "claims_20260101.csv", 3, d1, dob=None, paid=None, experience=None),
        _claim("C3", "MCD1", "0.05", "claims_20260101.csv", 4, d1),
        _claim("C3", "MCD1", "0.05", "claims_20260101.csv", 5, d1),  # duplicate line
    ]
    ref = TableRef("bronze", "medical_claims")
    storage.overwrite(spark.createDataFrame(rows, BRONZE_CLAIMS), ref)
    bronze = DeltaTable(storage.path(ref)).to_pandas()

    from_sail = silver.medical_claims(storage.read(ref), KEY).toArrow()
    from_pandas = pandas_medical_claims(bronze, KEY)

    assert from_sail.num_rows == 3
    assert same_table(from_sail, from_pandas)
    # the comparison can fail: one changed amount is a different table
    changed = bronze.assign(claim_amount=bronze["claim_amount"].replace("55.00", "55.01"))
    assert not same_table(from_sail, pandas_medical_claims(changed, KEY))


def _step(step, seconds, assets=(), rows=None, kind="asset"):
    return {"step": step, "seconds": seconds, "assets": list(assets), "rows": rows, "kind": kind}


def test_throughput_counts_rows_per_layer_and_incremental_compares_the_same_steps():
    run = {
        "steps": [
            _step("bronze_ingestion", 2.0, ["bronze/medical_claims", "bronze/quarantine"], 1000),
            _step("silver__medical_claims", 0.5, ["silver/medical_claims"], 400),
            _step("silver__dim_members", 1.5, ["silver/dim_members"], 100),
            _step("silver__medical_claims_values_valid", 9.0, kind="check"),
        ]
    }
    layers = throughput(run)
    assert layers["bronze"] == {"rows": 1000, "seconds": 2.0, "steps": 1, "rows_per_second": 500}
    assert layers["silver"]["rows_per_second"] == 250  # 500 rows in 2 s
    assert "scoring" not in layers

    one = {"asset_step_seconds": 4.0, "check_step_seconds": 1.0, "wall_seconds": 10.0, "steps": run["steps"]}
    longer_steps = [
        {**s, "seconds": s["seconds"] * (3 if s["step"] == "silver__dim_members" else 1)} for s in run["steps"]
    ]
    longer = {"asset_step_seconds": 7.0, "check_step_seconds": 1.0, "wall_seconds": 13.0, "steps": longer_steps}
    result = incremental(one, longer)
    assert result["asset_steps_ratio"] == 1.75
    assert result["all_steps_ratio"] == 1.6
    assert {s["step"]: s["ratio"] for s in result["per_step"]}["silver__dim_members"] == 3.0


def test_report_says_not_yet_measured_and_picks_up_section_files(tmp_path: Path):
    markdown, data = render(tmp_path)
    assert NOT_MEASURED in markdown and data["parallel_training"] is None

    parallel = {
        "sequential_seconds": 100.0,
        "parallel_seconds": 62.0,
        "parallel_to_sequential_ratio": 0.62,
        "sequential_step_seconds": {"catboost": 60.0, "xgboost": 40.0},
        "cpu_count": 2,
    }
    (tmp_path / "parallel_training.json").write_text(json.dumps(parallel))
    markdown, data = render(tmp_path)
    assert "wall time: **0.62** (62.0 s vs 100.0 s" in markdown
    assert "slower model alone: 0.6 here" in markdown  # 60 / (60 + 40)
    assert "`sequential_step_seconds.xgboost` | 40.0" in markdown
    assert data["parallel_training"] == parallel


def test_overhead_section_attributes_the_extra_time_to_event_log_writes(tmp_path: Path):
    scenario = {
        "scenario": "one day",
        "partitions": 1,
        "dagster_median_seconds": 3.0,
        "direct_median_seconds": 2.0,
        "ratio": 1.5,
        "materialization_events": 3,
        "seconds_before_first_step": 0.2,
        "event_log_writes": 40,
        "event_log_write_seconds": 0.4,
    }
    # a real pipeline record: the overhead table lists the scales the pipeline section measured
    shutil.copy(Path(benchmarks.__file__).parent / "results" / "pipeline_small.json", tmp_path)
    (tmp_path / "overhead_small.json").write_text(json.dumps({"scenarios": [scenario]}))
    markdown, _ = render(tmp_path)
    assert "| small | one day (1 partition) | 3.00 s | 2.00 s | 1.5 (+1.00 s) | 40 events, 0.40 s (40%) |" in markdown
    assert "**missed** (target ≤ 1.15)" in markdown and "Missed at small." in markdown


def test_repeated_incremental_runs_are_summarised_by_their_medians():
    def run(day: str, wall: float, steps: dict[str, float]) -> dict:
        return {
            "days": day,
            "wall_seconds": wall,
            "run_seconds": wall - 1,
            "asset_step_seconds": sum(steps.values()),
            "check_step_seconds": 0.5,
            "peak_tree_rss_mib": wall * 10,
            "max_process_rss_mib": 100.0,
            "steps": [_step(name, seconds, [], None) for name, seconds in steps.items()],
        }

    runs = [run("d1", 10, {"a": 1, "b": 5}), run("d2", 30, {"a": 3, "b": 4}), run("d3", 20, {"a": 2, "b": 9})]
    summary = median_run(runs)
    assert summary["wall_seconds"] == 20 and summary["asset_step_seconds"] == 7  # medians of 6, 7, 11
    assert {s["step"]: s["seconds"] for s in summary["steps"]} == {"a": 2, "b": 5}  # per step, not per run
    assert summary["peak_tree_rss_mib"] == 300  # memory: the worst run
    assert [r["days"] for r in summary["repeats"]] == ["d1", "d2", "d3"]
