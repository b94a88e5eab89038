"""Benchmark runner: measures one scale, then renders every section found in benchmarks/results/.

    python -m benchmarks.run --scale small      # or tiny | medium | large;  `make bench SCALE=small`
    python -m benchmarks.run --render-only      # re-render results.md/json from the section files

Each section writes its own JSON into benchmarks/results/ (this runner's sections are per scale:
`pipeline_<scale>.json`, `reference_<scale>.json`, `overhead_<scale>.json`, `sail_vs_pandas_<scale>.json`, `serving_<scale>.json`; other scripts add
`parallel_training.json`, `engines.json` and `backtest_<scale>.json`). The renderer collects whatever is there, so a
section measured later or by another script plugs in, and an absent one reads "not yet measured".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks import pipeline, reference
from benchmarks.backtest import BacktestConfig
from benchmarks.measure import PYTHON, python_env, run_measured
from benchmarks.scales import SCALES, Scale

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SECTIONS = ("pipeline", "reference", "overhead", "engines", "training", "backtest", "serving")
PACKAGES = ("dagster", "pyspark", "pysail", "deltalake", "pandas", "pyarrow", "numpy", "catboost", "xgboost")


def _progress(started: float):
    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    return progress


def machine() -> dict:
    """Cores, memory, load and versions: what the numbers were measured on."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(  # noqa: S603
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            cwd=BENCH_DIR,  # noqa: S607
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 2**20, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
    }


def _section_script(module: str, args: list[str], out: Path, work: Path, progress) -> dict:
    """Runs a section script in its own process (its own embedded engine) and returns its JSON."""
    log = work / f"{module}.log"
    process = run_measured([PYTHON, "-m", f"benchmarks.{module}", *args, "--out", str(out)], python_env({}), log)
    if process.returncode != 0:
        raise RuntimeError(f"benchmarks.{module} failed (exit {process.returncode}); see {log}\n{process.log_tail}")
    record = json.loads(out.read_text())
    record["peak_tree_rss_mib"] = round(process.peak_tree_rss_bytes / 2**20, 1)
    out.write_text(json.dumps(record, indent=2))
    progress(f"  done in {process.wall_seconds:.1f} s")
    return record


def measure(scale: Scale, work: Path, progress, sections: set[str]) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    if "incremental" in sections:
        progress(f"incremental: scale {scale.name}, one new day after 1 and after {scale.history_days} days")
        started = datetime.now(UTC).isoformat(timespec="seconds")
        host = machine()
        record = pipeline.run_incremental(scale, work, progress)
        record.update({"machine": host, "measured_at": started})
        (RESULTS_DIR / f"incremental_{scale.name}.json").write_text(json.dumps(record, indent=2))
        sections = sections - {"incremental"}
    if "reference" in sections:
        record = reference.measure(scale, work, progress)
        (RESULTS_DIR / f"reference_{scale.name}.json").write_text(json.dumps(record, indent=2))
        sections = sections - {"reference"}
    if not sections:
        return
    pipeline_file = RESULTS_DIR / f"pipeline_{scale.name}.json"
    if "pipeline" in sections:
        host = machine()
        progress(f"scale {scale.name}: {scale.nominal_claims:,} claims nominal over {scale.history_days} days; {work}")
        started = datetime.now(UTC).isoformat(timespec="seconds")
        record = pipeline.run(scale, work, progress)
        record.update({"machine": host, "measured_at": started})
        pipeline_file.write_text(json.dumps(record, indent=2))
    else:  # the other sections reuse the lakehouse a kept earlier run left (--keep)
        record = json.loads(pipeline_file.read_text())
        if not Path(record["lakehouse"]).is_dir():
            raise SystemExit(f"{record['lakehouse']} is gone: run the pipeline section again (with --keep)")

    lakehouse = record["lakehouse"]
    dagster_home = str(Path(lakehouse).parent / pipeline.DAGSTER_HOME)  # where the models were materialised
    last = scale.day(scale.history_days + 1)
    if "overhead" in sections:
        progress(f"orchestration overhead: gold and scoring over {scale.day(1)}...{last}, Dagster vs direct calls")
        overhead = _section_script(
            "overhead",
            [
                "--lakehouse",
                lakehouse,
                "--dagster-home",
                dagster_home,
                "--start",
                str(scale.day(1)),
                "--end",
                str(last),
            ],
            RESULTS_DIR / f"overhead_{scale.name}.json",
            work,
            progress,
        )
        for scenario in overhead["scenarios"]:
            progress(f"  {scenario['scenario']}: Dagster/direct = {scenario['ratio']}")
    if "engines" in sections:
        progress("engines: silver medical_claims cleaning, Sail vs pandas")
        engines = _section_script(
            "sail_vs_pandas",
            ["--lakehouse", lakehouse],
            RESULTS_DIR / f"sail_vs_pandas_{scale.name}.json",
            work,
            progress,
        )
        progress(f"  pandas/Sail = {engines['pandas_over_sail']}")
    if "training" in sections:
        progress("training: CatBoost + XGBoost fraud autoencoders, sequential vs in parallel")
        training = _section_script(
            "parallel_training", ["--lakehouse", lakehouse], RESULTS_DIR / "parallel_training.json", work, progress
        )
        progress(f"  parallel/sequential = {training['parallel_to_sequential_ratio']}")
    if "backtest" in sections and scale.history_days <= BacktestConfig.initial_days:
        progress(f"backtest: skipped, {scale.history_days} days leave nothing after the history it trains on")
    elif "backtest" in sections:
        progress("backtest: fraud detectors walked forward over the lakehouse's days, retrained weekly")
        backtest = _section_script(
            "backtest",
            ["--label", scale.name, "--lakehouse", lakehouse],
            RESULTS_DIR / f"backtest_{scale.name}.json",
            work,
            progress,
        )
        best = max(backtest["detectors"][m]["roc_auc"] for m in ("catboost", "xgboost"))
        progress(f"  best autoencoder forward ROC-AUC {best}, rules {backtest['detectors']['siu_rules']['roc_auc']}")

    if "serving" in sections:
        progress("serving: the champions behind the local scoring endpoint, latency and throughput")
        args = ["--label", scale.name, "--lakehouse", lakehouse]
        serving = _section_script("serving", args, RESULTS_DIR / f"serving_{scale.name}.json", work, progress)
        for endpoint, measured in serving["endpoints"].items():
            progress(f"  {endpoint}: p50 {measured['single_record']['p50_ms']} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--render-only", action="store_true", help="only re-render results.md/json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (lakehouses, run logs)")
    parser.add_argument("--work-dir", type=Path, help="where the lakehouses go (default: a new temporary directory)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of pipeline,reference,overhead,engines,training,backtest,serving (without "
        "pipeline: reuse a kept lakehouse), or incremental (a long daily-pipeline history, see --history-days)",
    )
    parser.add_argument("--history-days", type=int, help="days of history before the new days (default: the scale's)")
    args = parser.parse_args()
    progress = _progress(time.perf_counter())

    if not args.render_only:
        work = args.work_dir or Path(tempfile.mkdtemp(prefix=f"healthcare-bench-{args.scale}-"))
        try:
            scale = SCALES[args.scale]
            if args.history_days:
                scale = dataclasses.replace(scale, history_days=args.history_days)
            measure(scale, work, progress, set(args.sections.split(",")))
        except Exception:
            print(f"benchmark failed; logs kept in {work}", file=sys.stderr)
            raise
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    from benchmarks import report  # noqa: PLC0415 (rendering only)

    markdown, data = report.render(RESULTS_DIR)
    (BENCH_DIR / "results.md").write_text(markdown)
    (BENCH_DIR / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    progress(f"wrote {BENCH_DIR / 'results.md'} and results.json")


if __name__ == "__main__":
    main()
