"""Sail against classic Spark + delta-spark on the same transforms: the daily pipeline's tables over a few days.

    .venv/bin/python benchmarks/engines.py [--days 3] [--engines sail classic]

Each engine runs in its own process (PySpark allows one engine per process) on
its own throw-away lakehouse, with the same seeded synthetic data. Writes
benchmarks/results/engines.json: per engine the session start-up, the run's
wall time, rows per table and failed gates, and whether every table has the
same row count on every engine. Classic Spark needs `make jars` first.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "engines.json"
START = date(2026, 1, 1)
DATA = {"num_members": 300, "num_providers": 40, "claims_per_day": 80, "rx_claims_per_day": 40}


def measure(engine: str, days: int, root: str) -> dict:
    """Runs in the engine's own process: start the session, then materialise every asset for `days` days."""
    import dagster as dg
    from deltalake import DeltaTable

    from healthcare_assets.automation.jobs import MODELS_AND_OUTPUTS
    from healthcare_assets.definitions import build_definitions
    from healthcare_assets.resources.spark import get_session
    from healthcare_assets.settings import load_settings

    started = time.perf_counter()
    get_session(engine).range(1).count()
    startup = time.perf_counter() - started

    settings = load_settings({"LAKEHOUSE_ROOT": root, "SPARK_ENGINE": engine})
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    # the tables the engines compute (models train in pandas on either engine)
    tables_only = dg.AssetSelection.groups("landing", "bronze", "silver", "gold") - MODELS_AND_OUTPUTS
    end = START + timedelta(days=days - 1)
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
        run_config={"ops": {"synthetic_landing_feeds": {"config": DATA}}},
        asset_selection=list(tables_only.resolve(defs.resolve_asset_graph())),
        raise_on_error=False,
    )
    run_seconds = time.perf_counter() - started
    tables = {
        f"{path.parent.parent.name}/{path.parent.name}": len(DeltaTable(str(path.parent)).to_pyarrow_table())
        for path in sorted(Path(root).glob("*/*/_delta_log"))
        if path.parent.parent.name != "landing"
    }
    failed = sorted(
        f"{'/'.join(e.asset_key.path)}:{e.check_name}" for e in result.get_asset_check_evaluations() if not e.passed
    )
    return {
        "success": result.success,
        "session_start_seconds": round(startup, 2),
        "run_seconds": round(run_seconds, 2),
        "rows": tables,
        "failed_checks": failed,
    }


def run_engine(engine: str, days: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as root:
        completed = subprocess.run(  # noqa: S603 - this script with fixed arguments
            [sys.executable, __file__, "--measure", engine, "--days", str(days), "--root", root],
            env={**os.environ, "SPARK_ENGINE": engine},
            capture_output=True,
            text=True,
            check=False,
        )
    if completed.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["sail", "classic"])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.days, args.root)))
        return

    results = {engine: run_engine(engine, args.days) for engine in args.engines}
    row_counts = [results[engine]["rows"] for engine in args.engines]
    report = {
        "benchmark": "engines",
        "transforms": "the daily pipeline's tables (landing -> bronze -> silver -> gold features), one single-run backfill",
        "days": args.days,
        "data": DATA,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "engines": results,
        "same_row_counts": all(rows == row_counts[0] for rows in row_counts),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for engine, result in results.items():
        print(
            f"{engine:8} start {result['session_start_seconds']:6.1f} s  run {result['run_seconds']:7.1f} s  "
            f"tables {len(result['rows'])}  failed gates {len(result['failed_checks'])}"
        )
    print(f"same row counts on every engine: {report['same_row_counts']}  -> {RESULTS}")


if __name__ == "__main__":
    main()
