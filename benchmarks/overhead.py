"""Section 4: orchestration overhead of the gold assets.

The same gold tables are built over the same stored silver data twice, alternately, in one
process with one warm embedded Sail engine:

* through Dagster: `execute_in_process` of a job of the gold assets (without their checks)
  on an on-disk instance, i.e. IO-manager loads, the transforms, the IO-manager writes and
  the materialisation metadata (row count, schema, Delta version) every asset records;
* directly: the same `transforms.gold` functions on frames read with `DeltaStorage`,
  written with the same `replace_days` / `overwrite` calls.

Both paths write identical rows to the same tables (idempotent), so the order does not matter.

    python -m benchmarks.overhead --lakehouse DIR --start 2026-01-01 --end 2026-03-31 --out FILE
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from pyspark.sql import functions as F

from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY, MEMBER_FEATURES_KEY
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, SILVER_KEYS
from healthcare_assets.definitions import build_definitions
from healthcare_assets.resources.delta import PARTITION_COLUMN, DeltaStorage, TableRef
from healthcare_assets.resources.spark import get_session
from healthcare_assets.settings import load_settings
from healthcare_assets.transforms import gold

GOLD_JOB = "benchmark_gold_assets"
# the console log level `make run` uses
INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def _ref(key: dg.AssetKey) -> TableRef:
    return TableRef.from_path(key.path)


def direct(storage: DeltaStorage, start: date, end: date) -> None:
    """The gold tables from the transforms alone: what the assets do, without Dagster."""
    history = storage.read(_ref(SILVER_KEYS["medical_claims"]), start - timedelta(days=gold.CLAIM_HISTORY_DAYS), end)
    members = storage.read(_ref(DIM_MEMBERS_KEY))
    claims = history.where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))
    storage.replace_days(gold.claim_features(claims, history, members), _ref(CLAIM_FEATURES_KEY), start, end)

    all_claims = storage.read(_ref(SILVER_KEYS["medical_claims"]))
    as_of = all_claims.agg(F.max(PARTITION_COLUMN)).first()[0]
    features = gold.member_features(
        members,
        all_claims,
        storage.read(_ref(SILVER_KEYS["pharmacy_claims"])),
        storage.read(_ref(SILVER_KEYS["immunizations"])),
        as_of,
    )
    storage.overwrite(features, _ref(MEMBER_FEATURES_KEY))


def _compare(job, instance, storage: DeltaStorage, scenario: str, start: date, end: date, repeats: int) -> dict:
    """Times both paths alternately (after one warm-up each); medians, and the Dagster run's event count."""
    tags = dict(zip(RANGE_TAGS, (start.isoformat(), end.isoformat()), strict=True))
    run_ids: list[str] = []

    def through_dagster() -> None:
        result = job.execute_in_process(run_config=INFO_LOGS, instance=instance, tags=tags, raise_on_error=False)
        if not result.success:
            raise RuntimeError("the gold job failed; see the Dagster log above")
        run_ids.append(result.run_id)

    def directly() -> None:
        direct(storage, start, end)

    timings: dict[str, list[float]] = {"dagster": [], "direct": []}
    paths = {"dagster": through_dagster, "direct": directly}
    for name, path in paths.items():  # warm-up: engine start, first reads, imports
        print(f"{scenario} {start}...{end}: warm-up {name}", flush=True)
        path()
    for repeat in range(repeats):
        order = ("dagster", "direct") if repeat % 2 == 0 else ("direct", "dagster")
        for name in order:
            started = time.perf_counter()
            paths[name]()
            timings[name].append(time.perf_counter() - started)
            print(f"{scenario}: repeat {repeat + 1}/{repeats} {name}: {timings[name][-1]:.2f} s", flush=True)
    events = [e for e in instance.all_logs(run_ids[-1]) if e.dagster_event is not None]
    kinds = Counter(e.dagster_event.event_type_value for e in events)
    first_step = next(e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_START")
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "scenario": scenario,
        "days": f"{start}...{end}",
        "partitions": (end - start).days + 1,
        "dagster_seconds": [round(v, 3) for v in timings["dagster"]],
        "direct_seconds": [round(v, 3) for v in timings["direct"]],
        "dagster_median_seconds": round(medians["dagster"], 3),
        "direct_median_seconds": round(medians["direct"], 3),
        "ratio": round(medians["dagster"] / medians["direct"], 3),
        # where a range run's extra time goes: one planned + one materialisation event per partition
        "run_events": len(events),
        "materialization_events": kinds["ASSET_MATERIALIZATION"],
        "seconds_before_first_step": round(first_step - events[0].timestamp, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = load_settings({"LAKEHOUSE_ROOT": args.lakehouse, "SPARK_ENGINE": "sail"})
    gold_job = dg.define_asset_job(
        GOLD_JOB, selection=dg.AssetSelection.assets(CLAIM_FEATURES_KEY, MEMBER_FEATURES_KEY).without_checks()
    )
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[gold_job]))
    job = defs.resolve_job_def(GOLD_JOB)
    storage = DeltaStorage(get_session(settings.spark_engine), settings.lakehouse_root)

    with tempfile.TemporaryDirectory(prefix="bench-dagster-home-") as home:
        instance = dg.DagsterInstance.local_temp(home)

        scenarios = [
            _compare(job, instance, storage, "backfill", args.start, args.end, args.repeats),
            _compare(job, instance, storage, "one day", args.end, args.end, args.repeats),
        ]
        instance.dispose()

    record = {
        "assets": [CLAIM_FEATURES_KEY.to_user_string(), MEMBER_FEATURES_KEY.to_user_string()],
        "repeats": args.repeats,
        "scenarios": scenarios,
        "claim_features_rows": storage.read(_ref(CLAIM_FEATURES_KEY), args.start, args.end).count(),
        "member_features_rows": storage.read(_ref(MEMBER_FEATURES_KEY)).count(),
    }
    args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
