"""Sections 1-3: the whole graph through the real Dagster CLI on a fresh lakehouse and instance.

* end to end: one single-run backfill of `history_days` days (every asset: tables, models, scores,
  monitoring and governance, every check);
* throughput per layer, from the steps of that run;
* incremental cost: the daily_pipeline job's assets for one new day after 1 day of history (fresh
  lakehouses) against one new day after `history_days` days (on top of the backfill); each side is
  measured INCREMENTAL_REPEATS times and the medians compared, since a day's steps take seconds.
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import asdict
from datetime import date
from pathlib import Path

from benchmarks.measure import DAGSTER, ProcessResult, RunTimings, StepTiming, python_env, run_measured, run_timings
from benchmarks.scales import Scale

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("landing", "bronze", "silver", "gold")
WHOLE_GRAPH = "*"
# The daily_pipeline job's assets (landing through the gold feature tables): the work a new day costs.
# Model training is not daily work (its own job, on drift), so the incremental runs leave it out.
DAILY_PIPELINE = "(group:landing or group:bronze or group:silver or group:gold) and not (group:fraud or group:risk or group:governance)+"
SCORING_MARKERS = ("score", "prediction")  # batch-scoring assets
# One new day is measured this many times on each side: after 1 day on as many fresh lakehouses, after the
# history on as many consecutive new days (a day or two more history is noise against 90).
INCREMENTAL_REPEATS = 3
DAGSTER_HOME = "dagster_home"  # the instance's folder beside the lakehouse


class Lakehouse:
    """A throw-away lakehouse with its own Dagster instance."""

    def __init__(self, root: Path):
        self.root = root
        self.dagster_home = root / DAGSTER_HOME
        shutil.rmtree(root, ignore_errors=True)
        self.dagster_home.mkdir(parents=True)
        shutil.copy(REPO / "dagster.yaml", self.dagster_home / "dagster.yaml")
        self.env = python_env(
            {
                "HEALTHCARE_ENV": "local",
                "SPARK_ENGINE": "sail",
                "LAKEHOUSE_ROOT": str(root / "lakehouse"),
                "DAGSTER_HOME": str(self.dagster_home),
            }
        )
        self.runs = 0

    def materialize(
        self, scale: Scale, start: date, end: date, label: str, progress, select: str = WHOLE_GRAPH
    ) -> dict:
        """Materialises `select` (default: every asset) for the days in one run and measures it."""
        config = {
            "ops": {"synthetic_landing_feeds": {"config": scale.synthetic_config()}},
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        }
        days = ["--partition", start.isoformat()] if start == end else ["--partition-range", f"{start}...{end}"]
        args = [DAGSTER, "asset", "materialize", "-m", "healthcare_assets.definitions", "--select", select, *days]
        self.runs += 1
        log = self.root / f"run{self.runs}-{label}.log"
        process = run_measured(
            [*args, "--config-json", json.dumps(config)], self.env, log, cwd=REPO, echo=_run_progress(progress)
        )
        if process.returncode != 0:
            raise RuntimeError(f"{label}: dagster exited with {process.returncode}; see {log}\n{process.log_tail}")
        return _run_record(label, start, end, process, run_timings(self.dagster_home))


def _run_progress(progress):
    """Echoes the run's INFO lines (step progress) as `step: message`."""

    def echo(line: str) -> None:
        if " - INFO - " in line:
            # "<time> - dagster - INFO - <job> - <run id> - <step> - <message>"
            parts = line.split(" - ", 6)
            progress("    " + " - ".join(parts[5:]) if len(parts) > 5 else line)

    return echo


def _run_record(label: str, start: date, end: date, process: ProcessResult, timings: RunTimings) -> dict:
    steps = timings.steps
    return {
        "label": label,
        "days": f"{start}...{end}" if start != end else str(start),
        "run_id": timings.run_id,
        "wall_seconds": round(process.wall_seconds, 3),
        "run_seconds": round(timings.run_seconds, 3),
        "peak_tree_rss_mib": round(process.peak_tree_rss_bytes / 2**20, 1),
        "max_process_rss_mib": round(process.max_rss_bytes / 2**20, 1),
        "asset_step_seconds": round(sum(s.seconds for s in steps if s.kind == "asset"), 3),
        "check_step_seconds": round(sum(s.seconds for s in steps if s.kind == "check"), 3),
        "steps": [asdict(s) for s in sorted(steps, key=lambda s: s.step)],
    }


def median_run(runs: list[dict]) -> dict:
    """One record of several runs of the same steps: the median of every duration, per step too."""

    def median(values) -> float:
        return round(statistics.median(values), 3)

    steps = []
    for step in runs[0]["steps"]:
        durations = [s["seconds"] for run in runs for s in run["steps"] if s["step"] == step["step"]]
        steps.append({**step, "seconds": median(durations)})
    timed = ("wall_seconds", "run_seconds", "asset_step_seconds", "check_step_seconds")
    return {
        **runs[-1],
        **{name: median(run[name] for run in runs) for name in timed},
        "peak_tree_rss_mib": max(run["peak_tree_rss_mib"] for run in runs),
        "max_process_rss_mib": max(run["max_process_rss_mib"] for run in runs),
        "repeats": [{"days": run["days"], **{name: run[name] for name in timed}} for run in runs],
        "steps": steps,
    }


def _layer(asset: str) -> str:
    if any(marker in asset for marker in SCORING_MARKERS):
        return "scoring"
    return asset.split("/", 1)[0]


def throughput(run: dict) -> dict[str, dict]:
    """Rows written per second of step time, per layer (a step counts towards the layer of its assets)."""
    layers: dict[str, dict] = {}
    for step in run["steps"]:
        timing = StepTiming(**step)
        if timing.kind != "asset" or not timing.rows:
            continue
        layer = _layer(timing.assets[0])
        totals = layers.setdefault(layer, {"rows": 0, "seconds": 0.0, "steps": 0})
        totals["rows"] += timing.rows
        totals["seconds"] += timing.seconds
        totals["steps"] += 1
    for totals in layers.values():
        totals["rows_per_second"] = round(totals["rows"] / totals["seconds"]) if totals["seconds"] else None
        totals["seconds"] = round(totals["seconds"], 3)
    return layers


def incremental(after_one: dict, after_history: dict) -> dict:
    """Ratios of one new day's cost after the long history vs after one day, per step and in total."""

    def ratio(a: float, b: float) -> float | None:
        return round(b / a, 3) if a > 0 else None

    one = {s["step"]: s for s in after_one["steps"]}
    per_step = []
    for step in after_history["steps"]:
        base = one.get(step["step"])
        if base is None:
            continue
        per_step.append(
            {
                "step": step["step"],
                "kind": step["kind"],
                "after_1_day_seconds": round(base["seconds"], 3),
                "after_history_seconds": round(step["seconds"], 3),
                "ratio": ratio(base["seconds"], step["seconds"]),
            }
        )
    return {
        "asset_steps_ratio": ratio(after_one["asset_step_seconds"], after_history["asset_step_seconds"]),
        "all_steps_ratio": ratio(
            after_one["asset_step_seconds"] + after_one["check_step_seconds"],
            after_history["asset_step_seconds"] + after_history["check_step_seconds"],
        ),
        "wall_ratio": ratio(after_one["wall_seconds"], after_history["wall_seconds"]),
        "per_step": per_step,
    }


def _new_days_after_history(history: Lakehouse, scale: Scale, progress) -> list[dict]:
    """INCREMENTAL_REPEATS consecutive new days of the daily pipeline on top of the lakehouse's history."""
    runs = []
    for repeat in range(1, INCREMENTAL_REPEATS + 1):
        new_day = scale.day(scale.history_days + repeat)
        progress(f"incremental {repeat}/{INCREMENTAL_REPEATS}: day {new_day} after {scale.history_days} days")
        runs.append(history.materialize(scale, new_day, new_day, f"after-history-{repeat}", progress, DAILY_PIPELINE))
        progress(
            f"  {runs[-1]['asset_step_seconds']:.1f} s of asset steps, peak RSS {runs[-1]['peak_tree_rss_mib']:.0f} MiB"
        )
    return runs


def _second_days(scale: Scale, work: Path, progress) -> list[dict]:
    """Day 2 of the daily pipeline after day 1, on INCREMENTAL_REPEATS fresh lakehouses."""
    runs = []
    for repeat in range(1, INCREMENTAL_REPEATS + 1):
        fresh = Lakehouse(work / f"one_day_{repeat}")
        progress(f"incremental {repeat}/{INCREMENTAL_REPEATS}: day {scale.day(2)} after 1 day (fresh lakehouse)")
        fresh.materialize(scale, scale.day(1), scale.day(1), "first-day", progress, DAILY_PIPELINE)
        runs.append(fresh.materialize(scale, scale.day(2), scale.day(2), "after-1-day", progress, DAILY_PIPELINE))
        progress(
            f"  {runs[-1]['asset_step_seconds']:.1f} s of asset steps, peak RSS {runs[-1]['peak_tree_rss_mib']:.0f} MiB"
        )
        shutil.rmtree(fresh.root, ignore_errors=True)
    return runs


def _incremental_record(after_one_runs: list[dict], after_history_runs: list[dict]) -> dict:
    after_one, after_history = median_run(after_one_runs), median_run(after_history_runs)
    return {"after_1_day": after_one, "after_history": after_history, **incremental(after_one, after_history)}


def run(scale: Scale, work: Path, progress) -> dict:
    """Runs the three measurements; returns the section record (the main lakehouse stays for the next sections)."""
    history = Lakehouse(work / "history")
    last = scale.day(scale.history_days)
    progress(f"end to end: backfill {scale.day(1)}...{last} ({scale.history_days} days) through the Dagster CLI")
    backfill = history.materialize(scale, scale.day(1), last, "backfill", progress)
    progress(f"  {backfill['wall_seconds']:.1f} s wall, peak RSS {backfill['peak_tree_rss_mib']:.0f} MiB")
    after_history_runs = _new_days_after_history(history, scale, progress)
    after_one_runs = _second_days(scale, work, progress)
    return {
        "scale": scale.name,
        "config": scale.synthetic_config(),
        "history_days": scale.history_days,
        "lakehouse": str(history.root / "lakehouse"),
        "end_to_end": backfill,
        "throughput": throughput(backfill),
        "incremental": _incremental_record(after_one_runs, after_history_runs),
    }


# The long-history incremental measurement builds its history with the daily pipeline only (no models), in runs
# of this many days each (one single-run backfill per chunk keeps a run's memory bounded).
BACKFILL_CHUNK_DAYS = 60


def run_incremental(scale: Scale, work: Path, progress) -> dict:
    """One new day of the daily pipeline after 1 day and after `scale.history_days` days built by the daily
    pipeline's faster backfill (landing through gold, no model training); peak RSS of every run."""
    history = Lakehouse(work / "incremental_history")
    backfills = []
    for first in range(1, scale.history_days + 1, BACKFILL_CHUNK_DAYS):
        last = min(first + BACKFILL_CHUNK_DAYS - 1, scale.history_days)
        progress(f"history: daily pipeline backfill {scale.day(first)}...{scale.day(last)}")
        run_record = history.materialize(
            scale, scale.day(first), scale.day(last), f"backfill-{first}", progress, DAILY_PIPELINE
        )
        backfills.append({k: run_record[k] for k in ("days", "wall_seconds", "peak_tree_rss_mib")})
        progress(f"  {run_record['wall_seconds']:.1f} s wall, peak RSS {run_record['peak_tree_rss_mib']:.0f} MiB")
    after_history_runs = _new_days_after_history(history, scale, progress)
    shutil.rmtree(history.root, ignore_errors=True)
    after_one_runs = _second_days(scale, work, progress)
    return {
        "scale": scale.name,
        "config": scale.synthetic_config(),
        "history_days": scale.history_days,
        "backfill": backfills,
        "backfill_wall_seconds": round(sum(b["wall_seconds"] for b in backfills), 1),
        "peak_rss_per_day_mib": {
            "after_1_day": [run["peak_tree_rss_mib"] for run in after_one_runs],
            "after_history": [run["peak_tree_rss_mib"] for run in after_history_runs],
        },
        "incremental": _incremental_record(after_one_runs, after_history_runs),
    }
