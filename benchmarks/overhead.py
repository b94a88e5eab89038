"""Section 4: orchestration overhead of the gold feature and batch-scoring assets.

The gold feature tables and the XGBoost fraud scores are built over the same stored silver data
twice, alternately, in one process with one warm embedded Sail engine:

* through Dagster: `execute_in_process` of a job of those assets (without their checks) on the
  benchmark's own instance (where the end-to-end run registered the model), i.e. IO-manager loads,
  the transforms, scoring, the IO-manager writes and the metadata every materialisation records
  (row count, schema, Delta version, column lineage, the score histogram);
* directly: the same `transforms.gold` and `transforms.scoring` functions on frames read with
  `DeltaStorage`, written with the same `replace_days` / `overwrite` calls, the score histogram
  computed the same way.

Both paths write identical rows to the same tables (idempotent), so the order does not matter.

    python -m benchmarks.overhead --lakehouse DIR --dagster-home DIR --start 2026-01-01 --end 2026-03-31 --out FILE
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import mlflow
from pyspark.sql import functions as F

from healthcare_assets.assets.fraud import MODEL_KEYS, SCORE_KEYS, load_fraud_model, score_chart_histogram
from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY, MEMBER_FEATURES_KEY
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, SILVER_KEYS
from healthcare_assets.definitions import build_definitions
from healthcare_assets.resources.delta import PARTITION_COLUMN, DeltaStorage, TableRef
from healthcare_assets.resources.spark import get_session
from healthcare_assets.settings import load_settings
from healthcare_assets.transforms import gold, scoring

GOLD_JOB = "benchmark_gold_assets"
# the faster of the two fraud models: scoring costs the same per claim through both paths
SCORING_MODEL = "xgboost"
SCORES_KEY = SCORE_KEYS[SCORING_MODEL]
# the console log level `make run` uses
INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def _ref(key: dg.AssetKey) -> TableRef:
    return TableRef.from_path(key.path)


def direct(storage: DeltaStorage, start: date, end: date, model_uri: str, model_version: str) -> None:
    """The gold tables and the scores from the transforms alone: what the assets do, without Dagster (the
    scoring asset loads its model from MLflow on every run, and so does this)."""
    history = storage.read(
        _ref(SILVER_KEYS["medical_claims"]), start - timedelta(days=gold.CLAIM_FEATURE_WINDOW_DAYS), end
    )
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

    model = load_fraud_model(model_uri)
    scored = scoring.fraud_scores(storage.read(_ref(CLAIM_FEATURES_KEY), start, end), model, model_version)
    scored = scored.localCheckpoint()  # scored once for the histogram and the write, as the asset does
    score_chart_histogram(scored, model.thresholds)
    storage.replace_days(scored, _ref(SCORES_KEY), start, end)


class EventWriteClock:
    """Times the instance's event-log writes (one SQLite transaction per event here), so the report can say
    how much of the Dagster path's extra time is bookkeeping rather than work."""

    def __init__(self, instance: dg.DagsterInstance):
        storage = instance.event_log_storage
        self.seconds = 0.0
        self.events = 0
        store = storage.store_event

        def timed_store(event) -> None:
            started = time.perf_counter()
            try:
                store(event)
            finally:
                self.seconds += time.perf_counter() - started
                self.events += 1

        storage.store_event = timed_store  # type: ignore[method-assign]

    def reset(self) -> None:
        self.seconds, self.events = 0.0, 0


def _compare(
    job, instance, clock: EventWriteClock, direct_path, scenario: str, start: date, end: date, repeats: int
) -> dict:
    """Times both paths alternately (after one warm-up each); medians, and the Dagster run's event count."""
    tags = dict(zip(RANGE_TAGS, (start.isoformat(), end.isoformat()), strict=True))
    run_ids: list[str] = []
    event_writes: list[tuple[int, float]] = []  # per timed Dagster run: events written, seconds writing them

    def through_dagster() -> None:
        clock.reset()
        result = job.execute_in_process(run_config=INFO_LOGS, instance=instance, tags=tags, raise_on_error=False)
        if not result.success:
            raise RuntimeError("the gold job failed; see the Dagster log above")
        run_ids.append(result.run_id)
        event_writes.append((clock.events, clock.seconds))

    def directly() -> None:
        direct_path(start, end)

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
    timed_writes = event_writes[1:]  # the warm-up run is not timed
    write_seconds = statistics.median(seconds for _, seconds in timed_writes)
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
        # every event the run stored (run, step, log and asset events) and the median time spent storing them
        "event_log_writes": timed_writes[-1][0],
        "event_log_write_seconds": round(write_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--dagster-home", required=True, help="the instance holding the fraud model's materialisation")
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = load_settings({"LAKEHOUSE_ROOT": args.lakehouse, "SPARK_ENGINE": "sail"})
    selection = dg.AssetSelection.assets(CLAIM_FEATURES_KEY, MEMBER_FEATURES_KEY, SCORES_KEY).without_checks()
    gold_job = dg.define_asset_job(GOLD_JOB, selection=selection)
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[gold_job]))
    job = defs.resolve_job_def(GOLD_JOB)
    storage = DeltaStorage(get_session(settings.spark_engine), settings.lakehouse_root)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)

    with dg.DagsterInstance.from_config(str(args.dagster_home)) as instance:
        model_run = instance.get_latest_materialization_event(MODEL_KEYS[SCORING_MODEL])
        if model_run is None:
            raise SystemExit(f"{args.dagster_home} holds no {SCORING_MODEL} model: run the pipeline section first")
        model_metadata = model_run.asset_materialization.metadata

        def direct_path(start: date, end: date) -> None:
            direct(storage, start, end, model_metadata["model_uri"].value, model_metadata["model_version"].value)

        clock = EventWriteClock(instance)
        scenarios = [
            _compare(job, instance, clock, direct_path, "backfill", args.start, args.end, args.repeats),
            _compare(job, instance, clock, direct_path, "one day", args.end, args.end, args.repeats),
        ]

    record = {
        "assets": [key.to_user_string() for key in (CLAIM_FEATURES_KEY, MEMBER_FEATURES_KEY, SCORES_KEY)],
        "repeats": args.repeats,
        "scenarios": scenarios,
        "claim_features_rows": storage.read(_ref(CLAIM_FEATURES_KEY), args.start, args.end).count(),
        "member_features_rows": storage.read(_ref(MEMBER_FEATURES_KEY)).count(),
        "scored_claims": storage.read(_ref(SCORES_KEY), args.start, args.end).count(),
    }
    args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
