"""Wall time of training the CatBoost and XGBoost fraud autoencoders one after the other vs side by side.

Reads the newest `--max-rows` claims of gold.claim_features from a local lakehouse (default ./.lakehouse, what
`make run` leaves), splits them by member into claims the models fit and a quarter calibrating, as the
fraud_model_* assets do, and trains both models with one thread each: first sequentially in this process, then
in two processes at once (what the fraud_model_training job's multiprocess executor does). Writes
benchmarks/results/parallel_training.json.

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
    columns = ["ingest_date", "claim_id", "member_key", *features]
    frame = DeltaTable(str(lakehouse / "gold" / "claim_features")).to_pandas(columns=columns)
    frame = frame.sort_values(["ingest_date", "claim_id"]).tail(max_rows)
    numeric = ClaimsTreeAutoencoder().num_features
    frame[numeric] = frame[numeric].astype(float)
    is_calibration = (pd.util.hash_pandas_object(frame["member_key"], index=False) % 4 == 0).to_numpy()
    return frame.loc[~is_calibration, features], frame.loc[is_calibration, features]


def _train(model_type: str, params: TreeParams, train: pd.DataFrame, calibration: pd.DataFrame) -> float:
    started = time.perf_counter()
    ClaimsTreeAutoencoder(model_type, params=params).fit(train, calibration)
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
    train, calibration = _frames(args.lakehouse, args.max_rows)

    started = time.perf_counter()
    sequential_steps = {t: _train(t, params, train, calibration) for t in ("catboost", "xgboost")}
    sequential = time.perf_counter() - started

    started = time.perf_counter()
    # spawned, not forked: a fork after the sequential fits inherits OpenMP thread state and hangs
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {t: pool.submit(_train, t, params, train, calibration) for t in ("catboost", "xgboost")}
        parallel_steps = {t: f.result() for t, f in futures.items()}
    parallel = time.perf_counter() - started

    result = {
        "train_rows": len(train),
        "calibration_rows": len(calibration),
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
