"""Wall time of training the CatBoost and XGBoost fraud autoencoders one after the other vs side by side.

Reads gold.claim_features from a local lakehouse (default ./.lakehouse, what `make run` leaves), splits it
by received day as the fraud_model_* assets do (latest 20 % of days validate), and trains both models with
one thread each: first sequentially in this process, then in two processes at once (what the
fraud_model_training job's multiprocess executor does). Writes benchmarks/results/parallel_training.json.

    .venv/bin/python -m benchmarks.parallel_training [--lakehouse .lakehouse] [--iterations 100] [--depth 5]

`make bench` runs it on the benchmark's own lakehouse (section `training`).
"""

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from deltalake import DeltaTable

from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder, TreeParams

RESULTS = Path(__file__).parent / "results" / "parallel_training.json"


def _frames(lakehouse: Path, max_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    features = ClaimsTreeAutoencoder().features
    frame = DeltaTable(str(lakehouse / "gold" / "claim_features")).to_pandas(columns=["ingest_date", *features])
    frame = frame.sort_values("ingest_date").tail(max_rows)
    days = sorted(frame["ingest_date"].unique())
    first_validation = days[-max(1, round(len(days) * 0.2))]
    numeric = ClaimsTreeAutoencoder().num_features
    frame[numeric] = frame[numeric].astype(float)
    is_validation = frame["ingest_date"] >= first_validation
    return frame.loc[~is_validation, features], frame.loc[is_validation, features]


def _train(model_type: str, params: TreeParams, train: pd.DataFrame, validation: pd.DataFrame) -> float:
    started = time.perf_counter()
    ClaimsTreeAutoencoder(model_type, params=params).fit(train, validation)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", type=Path, default=Path(".lakehouse"))
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    params = TreeParams(iterations=args.iterations, depth=args.depth, threads=1)
    train, validation = _frames(args.lakehouse, args.max_rows)

    started = time.perf_counter()
    sequential_steps = {t: _train(t, params, train, validation) for t in ("catboost", "xgboost")}
    sequential = time.perf_counter() - started

    started = time.perf_counter()
    # spawned, not forked: a fork after the sequential fits inherits OpenMP thread state and hangs
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {t: pool.submit(_train, t, params, train, validation) for t in ("catboost", "xgboost")}
        parallel_steps = {t: f.result() for t, f in futures.items()}
    parallel = time.perf_counter() - started

    result = {
        "train_rows": len(train),
        "validation_rows": len(validation),
        "iterations": args.iterations,
        "depth": args.depth,
        "threads_per_model": 1,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "sequential_seconds": round(sequential, 1),
        "parallel_seconds": round(parallel, 1),
        "parallel_to_sequential_ratio": round(parallel / sequential, 3),
        "sequential_step_seconds": {t: round(s, 1) for t, s in sequential_steps.items()},
        "parallel_step_seconds": {t: round(s, 1) for t, s in parallel_steps.items()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
