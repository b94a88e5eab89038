"""Walk-forward backtest of the fraud detectors: trained on history, scoring each later day as the daily job does.

A lakehouse through gold.claim_features (and the generator's fraud labels) is built for the scale's days, or an
existing one is reused (`--lakehouse`, e.g. what `make run` or a kept benchmark run left). The first
`--initial-days` received days are history only. From the next day on the models are retrained every
`--retrain-every` days, on that morning's data as the `fraud_model_training` job would train them
(FraudTrainingConfig: the newest received days held out, claims sampled across the span before them, a share of
the members calibrating), and every day until the next retraining is scored by the models trained before it: a
model never sees a day it scores. Beside both autoencoders, an IsolationForest (the same sample, the same
calibration) and the SIU rules (`domain/fraud_rules.py`, nothing to train) score the same days.

Per forward day: claims, labelled frauds, and per detector the p95 flag rate (judged against the 2-10 % band as
the scored-table gate judges it), ROC-AUC and PR-AUC; over all forward days: ROC-AUC, PR-AUC, precision at the
top 1 % / 5 % and recall per fraud pattern of the flags; per retraining: the window, rows, fit times and the flag
rate on its own held-out days (the model gate). Writes benchmarks/results/backtest_<scale>.json.

    .venv/bin/python -m benchmarks.backtest --scale small [--lakehouse PATH] [--forward-days N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.scales import SCALES, Scale

RESULTS = Path(__file__).parent / "results"
DETECTORS = ("catboost", "xgboost", "isolation_forest", "siu_rules")
AUTOENCODERS = ("catboost", "xgboost")


@dataclass(frozen=True)
class BacktestConfig:
    initial_days: int = 30  # received days of history before the first forward day
    retrain_every: int = 7  # days between retrainings (the first on the first forward day)
    forward_days: int | None = None  # at most this many forward days (None: every day after the history)
    # the training job's knobs (FraudTrainingConfig defaults unless given)
    training: dict = field(default_factory=dict)


def _progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def build_lakehouse(scale: Scale, root: Path, progress=_progress) -> Path:
    """Landing through gold.claim_features (and the fraud labels) for the scale's days, in one single-run backfill
    on an ephemeral instance; returns the lakehouse root."""
    import dagster as dg

    from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
    from healthcare_assets.assets.landing import FRAUD_LABELS_KEY
    from healthcare_assets.definitions import build_definitions
    from healthcare_assets.settings import load_settings

    lakehouse = root / "lakehouse"
    defs = build_definitions(load_settings({"LAKEHOUSE_ROOT": str(lakehouse), "SPARK_ENGINE": "sail"}))
    graph = defs.resolve_asset_graph()
    needed = dg.AssetSelection.assets(CLAIM_FEATURES_KEY, FRAUD_LABELS_KEY).upstream()
    selection = sorted(needed.required_multi_asset_neighbors().resolve(graph), key=str)
    first, last = scale.day(1), scale.day(scale.history_days)
    progress(f"building gold.claim_features for {first}..{last} ({scale.nominal_claims:,} claims nominal)")
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)},
        run_config={"ops": {"synthetic_landing_feeds": {"config": scale.synthetic_config()}}},
        asset_selection=selection,
        raise_on_error=False,
    )
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_failure]
        raise RuntimeError(f"building the lakehouse failed: {failures[:3]}")
    return lakehouse


def _labels(landing_root: Path, days: list[date]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for day in days:
        for path in (landing_root / "fraud_labels" / day.isoformat()).glob("*.csv"):
            frame = pd.read_csv(path, dtype=str)
            labels.update(zip(frame["claim_id"], frame["fraud_pattern"], strict=True))
    return labels


def _metrics(is_fraud: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    from healthcare_assets.domain.fraud_evaluation import detection_metrics

    if is_fraud.min() == is_fraud.max():  # a day without fraud (or only fraud) has no ranking to judge
        return {"roc_auc": None, "pr_auc": None}
    metrics = detection_metrics(is_fraud, scores)
    return {"roc_auc": round(metrics["roc_auc"], 4), "pr_auc": round(metrics["pr_auc"], 4)}


class _Detectors:
    """The four detectors as trained on one retraining morning."""

    def __init__(self, train: pd.DataFrame, calibration: pd.DataFrame, window, training: dict):
        from healthcare_assets.assets.fraud import FraudTrainingConfig
        from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder, TreeParams
        from healthcare_assets.domain.fraud_evaluation import IsolationForestBaseline

        config = FraudTrainingConfig(**training)
        params = TreeParams(iterations=config.iterations, depth=config.depth, learning_rate=config.learning_rate)
        self.models = {}
        self.fit_seconds = {}
        for model_type in AUTOENCODERS:
            started = time.perf_counter()
            model = ClaimsTreeAutoencoder(model_type, params=params, seed=config.seed)
            features = model.features
            model.fit(train[features], calibration[features], training_days=(window.first_day, window.last_day))
            self.models[model_type] = model
            self.fit_seconds[model_type] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        self.forest = IsolationForestBaseline(train, calibration, seed=config.seed)
        self.fit_seconds["isolation_forest"] = round(time.perf_counter() - started, 1)

    def score(self, claims: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """detector -> (scores, p95 flags) of the claims."""
        from healthcare_assets.domain.fraud_rules import rule_scores

        scored = {}
        for model_type, model in self.models.items():
            scores, _ = model.compute_fraud_scores(claims[model.features])
            scored[model_type] = (scores, scores > model.thresholds["p95"])
        forest = self.forest.scores(claims)
        scored["isolation_forest"] = (forest, forest > self.forest.p95)
        rules = rule_scores(claims)
        scored["siu_rules"] = (rules, rules > 0)
        return scored


def walk_forward(lakehouse: Path, config: BacktestConfig, progress=_progress) -> dict:
    """Trains on the schedule and scores every forward day with the detectors trained before it."""
    from pyspark.sql import functions as F

    from healthcare_assets.assets.fraud import CLAIM_FEATURES, FraudTrainingConfig, feature_frame
    from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder
    from healthcare_assets.domain.fraud_evaluation import (
        DayFlagRate,
        daily_flag_counts,
        day_flag_rates,
        detection_metrics,
        recall_by_pattern,
    )
    from healthcare_assets.domain.fraud_training import training_window
    from healthcare_assets.resources.delta import PARTITION_COLUMN, DeltaStorage
    from healthcare_assets.resources.spark import get_session
    from healthcare_assets.transforms.fraud_training import sampled_frames

    training = FraudTrainingConfig(**config.training)
    storage = DeltaStorage(get_session("sail"), str(lakehouse))
    features = ClaimsTreeAutoencoder().features
    frame = feature_frame(storage.read(CLAIM_FEATURES), [PARTITION_COLUMN, "claim_id", "member_key"], features)
    days = sorted(row[0] for row in frame.select(PARTITION_COLUMN).distinct().collect())
    if len(days) <= config.initial_days:
        raise SystemExit(
            f"{len(days)} received days: the backtest needs more than --initial-days {config.initial_days}"
        )
    forward = days[config.initial_days :][: config.forward_days]
    labels = _labels(lakehouse / "landing", forward)
    retrain_days = forward[:: config.retrain_every]
    progress(f"{len(forward)} forward days {forward[0]}..{forward[-1]}, {len(retrain_days)} retrainings")

    per_day: list[dict] = []
    retrains: list[dict] = []
    pooled: dict[str, list] = {name: [] for name in ("pattern", *DETECTORS, *(f"{d}_flag" for d in DETECTORS))}
    for number, retrain_day in enumerate(retrain_days):
        block = [
            d for d in forward if d >= retrain_day and (number + 1 == len(retrain_days) or d < retrain_days[number + 1])
        ]
        # that morning's data: every day received before it
        window = training_window(
            [d for d in days if d < retrain_day], training.holdout_days, training.training_span_days
        )
        history = frame.where(F.col(PARTITION_COLUMN) < F.lit(retrain_day))
        train, calibration = sampled_frames(
            history, window, training.max_training_rows, training.seed, training.calibration_share
        )
        progress(
            f"retraining {number + 1}/{len(retrain_days)} on {retrain_day}: window {window.first_day}..{window.last_day},"
            f" {len(train)} fitted + {len(calibration)} calibrating"
        )
        detectors = _Detectors(train, calibration, window, config.training)
        held_out: pd.DataFrame = history.where(F.col(PARTITION_COLUMN) >= F.lit(window.first_forward_day)).toPandas()
        gate = {}
        for model_type, model in detectors.models.items():
            scores, _ = model.compute_fraud_scores(held_out[features])
            rates = day_flag_rates(daily_flag_counts(held_out[PARTITION_COLUMN], scores > model.thresholds["p95"]))
            gate[model_type] = [rate.as_dict() for rate in rates]
        retrains.append(
            {
                "retrain_day": retrain_day.isoformat(),
                **window.as_params(),
                "train_rows": len(train),
                "calibration_rows": len(calibration),
                "fit_seconds": detectors.fit_seconds,
                "held_out_flag_rates": gate,
                "scores_days": [block[0].isoformat(), block[-1].isoformat()],
            }
        )
        started = time.perf_counter()
        claims: pd.DataFrame = (
            frame.where(F.col(PARTITION_COLUMN).between(F.lit(block[0]), F.lit(block[-1])))
            .orderBy(PARTITION_COLUMN, "claim_id")
            .toPandas()
        )
        assert window.last_day < claims[PARTITION_COLUMN].min()  # noqa: S101  # no model scores a day it saw
        scored = detectors.score(claims)
        retrains[-1]["score_seconds"] = round(time.perf_counter() - started, 1)
        patterns = claims["claim_id"].map(labels)
        for day, part in claims.groupby(PARTITION_COLUMN, sort=True):
            rows = part.index.to_numpy()
            is_fraud = patterns.loc[rows].notna().to_numpy()
            entry = {"day": day.isoformat(), "claims": len(rows), "frauds": int(is_fraud.sum())}
            entry["trained_through"] = window.last_day.isoformat()
            for name, (scores, flags) in scored.items():
                rate = DayFlagRate(day, len(rows), int(flags[rows].sum()))
                entry[name] = {
                    "flag_rate": round(rate.rate, 4),
                    "within_band": rate.within_band,
                    **_metrics(is_fraud, scores[rows]),
                }
            per_day.append(entry)
        pooled["pattern"].extend(patterns.tolist())
        for name, (scores, flags) in scored.items():
            pooled[name].extend(scores.tolist())
            pooled[f"{name}_flag"].extend(flags.tolist())

    patterns = pd.Series(pooled["pattern"], dtype=object)
    is_fraud = patterns.notna().to_numpy()
    summary = {}
    for name in DETECTORS:
        rates = np.array([entry[name]["flag_rate"] for entry in per_day])
        daily_auc = [entry[name]["roc_auc"] for entry in per_day if entry[name]["roc_auc"] is not None]
        metrics = detection_metrics(is_fraud, np.asarray(pooled[name], dtype=float))
        summary[name] = {
            **{k: round(v, 4) for k, v in metrics.items()},
            "recall_by_pattern": {
                p: round(r, 4) for p, r in recall_by_pattern(patterns, np.asarray(pooled[f"{name}_flag"])).items()
            },
            "flag_rate_mean": round(float(rates.mean()), 4),
            "flag_rate_min": round(float(rates.min()), 4),
            "flag_rate_max": round(float(rates.max()), 4),
            "days_outside_2_10": int(((rates < 0.02) | (rates > 0.10)).sum()),
            "days_out_of_band": sum(not entry[name]["within_band"] for entry in per_day),
            "daily_roc_auc_mean": round(float(np.mean(daily_auc)), 4) if daily_auc else None,
            "daily_roc_auc_min": round(float(np.min(daily_auc)), 4) if daily_auc else None,
        }
    return {
        "config": {**asdict(config), "training": training.model_dump()},
        "received_days": [days[0].isoformat(), days[-1].isoformat()],
        "forward_days": len(forward),
        "first_forward_day": forward[0].isoformat(),
        "forward_claims": len(patterns),
        "forward_frauds": int(is_fraud.sum()),
        "detectors": summary,
        "retrains": retrains,
        "days": per_day,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--lakehouse", type=Path, help="reuse this lakehouse root (gold.claim_features and landing)")
    parser.add_argument("--work-dir", type=Path, help="where to build the lakehouse (default: a temporary directory)")
    parser.add_argument("--initial-days", type=int, default=BacktestConfig.initial_days)
    parser.add_argument("--retrain-every", type=int, default=BacktestConfig.retrain_every)
    parser.add_argument("--forward-days", type=int, help="score at most this many forward days")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scale = SCALES[args.scale]
    started = time.perf_counter()
    config = BacktestConfig(args.initial_days, args.retrain_every, args.forward_days)
    with tempfile.TemporaryDirectory(prefix=f"healthcare-backtest-{scale.name}-") as temporary:
        lakehouse = args.lakehouse or build_lakehouse(scale, args.work_dir or Path(temporary))
        build_seconds = round(time.perf_counter() - started, 1)
        result = walk_forward(lakehouse, config)
    result.update(
        {
            "scale": scale.name,
            "synthetic": scale.synthetic_config(),
            "lakehouse_built_seconds": None if args.lakehouse else build_seconds,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "machine": platform.machine(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    out = args.out or RESULTS / f"backtest_{scale.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    _progress(f"wrote {out}")


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- report section

_PATTERNS = ("upcoding", "duplicate_billing", "phantom_provider", "unbundling")
_NAMES = {
    "catboost": "CatBoost autoencoder",
    "xgboost": "XGBoost autoencoder",
    "isolation_forest": "IsolationForest",
    "siu_rules": "SIU rules (any of 4)",
}


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _comparison(result: dict) -> str:
    """One honest sentence: the better autoencoder against the rules, by pooled ROC-AUC and PR-AUC."""
    detectors = result["detectors"]
    best = max(AUTOENCODERS, key=lambda name: detectors[name]["roc_auc"])
    model, rules = detectors[best], detectors["siu_rules"]
    verdict = "above" if model["pr_auc"] > rules["pr_auc"] else "below"
    return (
        f"The better autoencoder ({_NAMES[best]}) ranks the forward claims at ROC-AUC {model['roc_auc']:.3f} and "
        f"PR-AUC {model['pr_auc']:.3f}; the four SIU rules reach {rules['roc_auc']:.3f} and {rules['pr_auc']:.3f} "
        f"while flagging {rules['flag_rate_mean']:.1%} of the claims, so the autoencoder is {verdict} the rules on "
        "PR-AUC. The rules were written for the four injected schemes and catch them as such; the autoencoders "
        "are told no scheme and are what is left to catch a scheme nobody has written a rule for yet."
    )


def backtest_section(results: Path, scale_order: tuple[str, ...]) -> tuple[list[str], dict]:
    """The markdown section of every backtest_<scale>.json in `results`, and their data."""
    found = {p.stem.removeprefix("backtest_"): json.loads(p.read_text()) for p in results.glob("backtest_*.json")}
    order = sorted(found, key=lambda s: (scale_order.index(s) if s in scale_order else len(scale_order), s))
    out = ["## 7. Walk-forward fraud backtest", ""]
    if not found:
        return [*out, "_not yet measured_: `python -m benchmarks.backtest --scale <scale>`.", ""], {}
    first = found[order[0]]["config"]
    training = first["training"]
    out += [
        "`benchmarks/backtest.py`: the first "
        f"{first['initial_days']} received days are history; from then on both autoencoders retrain every "
        f"{first['retrain_every']} days on that morning's data as the `fraud_model_training` job does (the newest "
        f"{training['holdout_days']} days held out, at most {training['max_training_rows']:,} claims sampled across "
        f"the {training['training_span_days']} days before, {training['calibration_share']:.0%} of the members "
        f"calibrating; {training['iterations']} iterations, depth {training['depth']}) and score every day until "
        "the next retraining: no model scores a day it saw. The IsolationForest trains on the same sample; the SIU "
        "rules (`domain/fraud_rules.py`) train on nothing. Flag rate = flagged at p95 (rules: any rule tripped); "
        "ROC-AUC and PR-AUC over all forward claims; a day is out of band when its 95 % interval lies wholly "
        "outside 2-10 % (what the scored-table gate fails on).",
        "",
    ]
    for scale in order:
        result = found[scale]
        detectors = result["detectors"]
        out += [
            f"### {scale}: {result['forward_days']} forward days from {result['first_forward_day']}, "
            f"{result['forward_claims']:,} claims, {result['forward_frauds']:,} labelled fraud, "
            f"{len(result['retrains'])} retrainings",
            "",
            "| detector | ROC-AUC | PR-AUC | precision@1% | precision@5% | flag rate: mean (min-max) | days outside "
            "2-10 % / out of band | daily ROC-AUC: mean (min) | recall: "
            + " / ".join(p.replace("_", " ") for p in _PATTERNS)
            + " |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in DETECTORS:
            d = detectors[name]
            recall = " / ".join(_percent(d["recall_by_pattern"].get(p)) for p in _PATTERNS)
            out.append(
                f"| {_NAMES[name]} | {d['roc_auc']:.3f} | {d['pr_auc']:.3f} | {d['precision_at_1pct']:.3f} | "
                f"{d['precision_at_5pct']:.3f} | {_percent(d['flag_rate_mean'])} ({_percent(d['flag_rate_min'])}-"
                f"{_percent(d['flag_rate_max'])}) | {d['days_outside_2_10']} / {d['days_out_of_band']} | "
                f"{_ratio(d['daily_roc_auc_mean'])} ({_ratio(d['daily_roc_auc_min'])}) | {recall} |"
            )
        out += ["", _comparison(result), ""]
        out += [
            "| retrained | window | fitted + calibrating | held-out days' flag rate: CatBoost / XGBoost | fit: "
            "CatBoost / XGBoost | scored |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["retrains"]:
            held = {m: ", ".join(_percent(day["rate"]) for day in r["held_out_flag_rates"][m]) for m in AUTOENCODERS}
            fit = r["fit_seconds"]
            out.append(
                f"| {r['retrain_day']} | {r['first_training_day']}..{r['last_training_day']} | "
                f"{r['train_rows']:,} + {r['calibration_rows']:,} | {held['catboost']} / {held['xgboost']} | "
                f"{fit['catboost']} s / {fit['xgboost']} s | {r['scores_days'][0]}..{r['scores_days'][1]} |"
            )
        out.append("")
    return out, found
