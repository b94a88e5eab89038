"""Real-time scoring: latency and throughput of the local scoring endpoint for the fraud and risk champions.

Each champion (or, when no promotion has passed yet, the newest registered version, and the section says so)
is served by `LocalScoringServer`, the MLflow pyfunc scoring app the `serving/*_endpoint` assets run locally,
on 127.0.0.1. The records are the latest day's claims and the latest member snapshot of a lakehouse: one built
here (the scale's feeds through gold for `--days` days, the risk models, then the fraud models trained for the
last day with small trees and one held-out day, through `dagster asset materialize`), or an existing one
(`--lakehouse`, e.g. the benchmark's backfill or `make run`'s `.lakehouse`). Measured over HTTP from this process:

* single-claim latency: `--requests` requests of one record each (after a warm-up), p50 / p99 / mean;
* throughput: requests of `--batch-sizes` records, repeated, records per second and the p50 request time;
* beside it, batch scoring of the same records in-process (the model's own predict on one DataFrame).

Writes benchmarks/results/serving_<label>.json.

    .venv/bin/python -m benchmarks.serving --scale small [--lakehouse PATH] [--days 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.scales import SCALES, Scale

RESULTS = Path(__file__).parent / "results"
ENDPOINTS = ("fraud", "risk")
WARM_UP_REQUESTS = 20


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(share * len(ordered)))) - 1]


def _timed_requests(invoke, batches: list[list[dict]]) -> list[float]:
    durations = []
    for batch in batches:
        started = time.perf_counter()
        invoke(batch)
        durations.append(time.perf_counter() - started)
    return durations


def measure_endpoint(invoke, predict, rows: list[dict], requests: int, batch_sizes: list[int]) -> dict:
    """Latency of one-record requests and throughput of batched ones against `invoke` (records -> scores)."""
    _timed_requests(invoke, [[rows[i % len(rows)]] for i in range(WARM_UP_REQUESTS)])
    single = _timed_requests(invoke, [[rows[i % len(rows)]] for i in range(requests)])
    batched = []
    for size in batch_sizes:
        batch = [rows[i % len(rows)] for i in range(size)]
        repeats = max(3, min(50, 5_000 // size))
        durations = _timed_requests(invoke, [batch] * repeats)
        started = time.perf_counter()
        predict(batch)
        in_process = time.perf_counter() - started
        batched.append(
            {
                "batch_size": size,
                "requests": repeats,
                "records_per_second": round(size * repeats / sum(durations)),
                "p50_request_ms": round(statistics.median(durations) * 1000, 2),
                "in_process_records_per_second": round(size / in_process) if in_process > 0 else None,
            }
        )
    return {
        "distinct_records": len(rows),
        "single_record": {
            "requests": requests,
            "p50_ms": round(percentile(single, 0.50) * 1000, 2),
            "p99_ms": round(percentile(single, 0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(single) * 1000, 2),
            "records_per_second": round(requests / sum(single)),
        },
        "batches": batched,
    }


# Small trees and one held-out day: what trains and passes the fraud gates on a few days of data.
FRAUD_TRAINING = {
    "catboost": {"iterations": 30, "depth": 4, "holdout_days": 1},
    "xgboost": {"iterations": 100, "depth": 3, "holdout_days": 1},
}
TRAINING_SELECTION = (
    "group:fraud or key:gold/fraud_scores_catboost or key:gold/fraud_scores_xgboost or "
    "key:governance/fairness_monitoring"
)


def _build_lakehouse(scale: Scale, days: int, work: Path) -> Path:
    """The scale's feeds through gold for `days` days, then the risk and fraud models trained and promoted."""
    from benchmarks.measure import DAGSTER
    from benchmarks.pipeline import DAILY_PIPELINE, REPO, Lakehouse

    lakehouse = Lakehouse(work / "serving")
    last = scale.day(days)
    training = {f"fraud__fraud_model_{t}": {"config": c} for t, c in FRAUD_TRAINING.items()}
    steps = [
        (
            DAILY_PIPELINE,
            ["--partition-range", f"{scale.day(1)}...{last}"],
            {"synthetic_landing_feeds": {"config": scale.synthetic_config()}},
        ),
        ("group:risk", [], {}),
        (TRAINING_SELECTION, ["--partition", str(last)], training),
    ]
    for selection, partitions, ops in steps:
        command = [DAGSTER, "asset", "materialize", "-m", "healthcare_assets.definitions", "--select", selection]
        command += [*partitions, "--config-json", json.dumps({"ops": ops})]
        # a failed gate exits non-zero: the newest registered versions are served then
        subprocess.run(command, env=lakehouse.env, cwd=REPO, check=False)  # noqa: S603
    return lakehouse.root / "lakehouse"


def _served_version(registry, name: str) -> tuple[str, str, bool]:
    """(model URI, version, is the champion): the champion, else the newest registered version."""
    from healthcare_assets.resources.mlflow import CHAMPION

    champion = registry.version_with_alias(name, CHAMPION)
    if champion is not None:
        return registry.alias_uri(name, CHAMPION), str(champion.version), True
    versions = registry.client().search_model_versions(f"name = '{registry.registered_name(name)}'")
    if not versions:
        raise SystemExit(f"{name} has no registered version in this lakehouse's MLflow store: train it first")
    newest = max(versions, key=lambda v: int(v.version))
    return f"models:/{registry.registered_name(name)}/{newest.version}", str(newest.version), False


def run(lakehouse: Path, requests: int, batch_sizes: list[int], max_records: int) -> dict:
    import mlflow.pyfunc
    import pandas as pd

    from healthcare_assets.assets.fraud import load_fraud_model
    from healthcare_assets.assets.governance import FRAUD_MODEL_NAME
    from healthcare_assets.assets.risk import MODEL_NAME
    from healthcare_assets.assets.serving import latest_claims, latest_members, member_inputs, records
    from healthcare_assets.resources.build import build_resources
    from healthcare_assets.resources.serving import LocalScoringServer
    from healthcare_assets.settings import load_settings

    settings = load_settings({"LAKEHOUSE_ROOT": str(lakehouse), "SPARK_ENGINE": "sail"})
    resources = build_resources(settings)
    registry, storage = resources["mlflow"], resources["lakehouse"].storage()
    registry.setup_for_execution(None)  # type: ignore[arg-type]
    endpoints = {}
    for endpoint, name in zip(ENDPOINTS, (FRAUD_MODEL_NAME, MODEL_NAME), strict=True):
        uri, version, champion = _served_version(registry, name)
        if endpoint == "fraud":
            features = load_fraud_model(uri).features
            inputs = latest_claims(storage, features, max_records).toPandas()[features]
        else:
            inputs = member_inputs(latest_members(storage, max_records)[0])
        model = mlflow.pyfunc.load_model(uri)
        rows = records(inputs)
        server = LocalScoringServer(uri)
        try:
            measured = measure_endpoint(
                server.invoke, lambda batch, m=model: m.predict(pd.DataFrame(batch)), rows, requests, batch_sizes
            )
        finally:
            server.stop()
        endpoints[endpoint] = {"model": name, "version": version, "champion": champion, **measured}
        print(f"{endpoint}: {measured['single_record']}", flush=True)
    return {"endpoints": endpoints}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small", help="the data built (no --lakehouse)")
    parser.add_argument("--label", help="names the result file serving_<label>.json (default: the scale)")
    parser.add_argument("--lakehouse", type=Path, help="an existing local lakehouse (its MLflow store beside it)")
    parser.add_argument("--days", type=int, default=5, help="days to build when no lakehouse is given")
    parser.add_argument("--requests", type=int, default=500, help="one-record requests for the latency")
    parser.add_argument("--batch-sizes", default="10,100,1000")
    parser.add_argument("--max-records", type=int, default=1000, help="distinct records sent (cycled)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    work = Path(tempfile.mkdtemp(prefix="healthcare-serving-"))
    scale, label = SCALES[args.scale], args.label or args.scale
    lakehouse = args.lakehouse or _build_lakehouse(scale, args.days, work)
    record = {
        "label": label,
        # the first days of the scale's data built for this measurement, or None: an existing lakehouse
        "built_days": args.days if args.lakehouse is None else None,
        "claims_per_day": scale.claims_per_day if args.lakehouse is None else None,
        **run(lakehouse, args.requests, [int(b) for b in args.batch_sizes.split(",")], args.max_records),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": started,
    }
    out = args.out or RESULTS / f"serving_{label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


def serving_section(results: Path) -> tuple[list[str], dict]:
    """The markdown section of every serving_<label>.json in `results`, and their data."""
    found = {p.stem.removeprefix("serving_"): json.loads(p.read_text()) for p in sorted(results.glob("serving_*.json"))}
    out = ["## 8. Real-time scoring (local endpoint)", ""]
    if not found:
        return [*out, "_not yet measured_: `python -m benchmarks.serving`.", ""], {}
    out += [
        "`benchmarks/serving.py`: each champion behind the local scoring endpoint (MLflow's pyfunc scoring server "
        "on 127.0.0.1, what `serving/*_endpoint` runs on a laptop), called over HTTP from one client thread with "
        "the latest day's claims (fraud) and member snapshot (risk). Latency: one record per request; throughput: "
        "records per second of batched requests; in-process: the same model's predict on one DataFrame of the "
        "batch, without HTTP. Databricks Model Serving is not measured here.",
        "",
    ]
    for label, result in found.items():
        days = result["built_days"]
        source = (
            f"{days} days of {result['claims_per_day']:,} claims/day built for it"
            if days
            else "the benchmark's lakehouse"
        )
        machine = result["machine"]
        out += [
            f"### {label}: {source}, measured {result['measured_at']}",
            "",
            f"{machine['cores']} cores, load average {machine['load_average_at_start'][0]} when it started "
            "(other work shared the machine: compare the rows with each other, not with a quiet machine).",
            "",
        ]
        out += [
            "| endpoint | model version | p50 ms | p99 ms | mean ms | one-record requests/s |",
            "|---|---|---|---|---|---|",
        ]
        for endpoint, measured in result["endpoints"].items():
            single = measured["single_record"]
            version = f"{measured['version']} ({'champion' if measured['champion'] else 'newest, no champion yet'})"
            out.append(
                f"| {endpoint} | {version} | {single['p50_ms']} | {single['p99_ms']} | {single['mean_ms']} | "
                f"{single['records_per_second']:,} |"
            )
        out += ["", "| endpoint | batch | records/s | p50 request ms | in-process records/s |", "|---|---|---|---|---|"]
        for endpoint, measured in result["endpoints"].items():
            for batch in measured["batches"]:
                in_process = batch["in_process_records_per_second"]
                out.append(
                    f"| {endpoint} | {batch['batch_size']:,} | {batch['records_per_second']:,} | "
                    f"{batch['p50_request_ms']} | {f'{in_process:,}' if in_process else 'n/a'} |"
                )
        out.append("")
    return out, found


if __name__ == "__main__":
    main()
