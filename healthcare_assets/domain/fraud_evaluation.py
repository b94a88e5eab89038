"""Scoring fraud detectors against labelled claims (ranking quality, precision at the top, recall per pattern) and
judging the share of a day's claims a model flags, which needs no labels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from .features import FRAUD_CATEGORICAL_FEATURES, FRAUD_NUMERIC_FEATURES

# points kept per curve: smooth at chart size, a few kilobytes of metadata whatever the number of claims
CURVE_POINTS = 200
# A calibrated model flags about 5 % of a new day's claims at its p95 threshold; outside this band the list an
# investigator works is either noise-sized or far beyond capacity.
FLAG_RATE_BAND = (0.02, 0.10)
_Z_95 = 1.959964  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class DayFlagRate:
    """A day's p95 flags, with the 95 % Wilson interval of its rate: a day is out of band only when that whole
    interval is, so a small day is not failed for a claim or two more or less."""

    day: date
    claims: int
    flagged: int
    band: tuple[float, float] = FLAG_RATE_BAND

    @property
    def rate(self) -> float:
        return self.flagged / self.claims if self.claims else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        if not self.claims:
            return 0.0, 1.0
        n, p, z2 = self.claims, self.rate, _Z_95**2
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = _Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    @property
    def within_band(self) -> bool:
        low, high = self.interval
        return high >= self.band[0] and low <= self.band[1]

    @classmethod
    def from_dict(cls, entry: Mapping) -> DayFlagRate:
        return cls(date.fromisoformat(entry["day"]), int(entry["claims"]), int(entry["flagged"]))

    def as_dict(self) -> dict:
        low, high = self.interval
        return {
            "day": self.day.isoformat(),
            "claims": self.claims,
            "flagged": self.flagged,
            "rate": round(self.rate, 4),
            "interval": [round(low, 4), round(high, 4)],
            "within_band": self.within_band,
        }


def day_flag_rates(
    counts: Mapping[date, tuple[int, int]], band: tuple[float, float] = FLAG_RATE_BAND
) -> list[DayFlagRate]:
    """Per day (oldest first): (claims, flagged) -> the day's flag rate judged against `band`."""
    return [DayFlagRate(day, claims, flagged, band) for day, (claims, flagged) in sorted(counts.items())]


def daily_flag_counts(days: pd.Series, flagged: np.ndarray) -> dict[date, tuple[int, int]]:
    """day -> (claims, flagged) of a scored frame."""
    frame = pd.DataFrame({"day": days.to_numpy(), "flagged": np.asarray(flagged, dtype=bool)})
    grouped = frame.groupby("day", sort=True)["flagged"].agg(["size", "sum"])
    return {day: (int(row["size"]), int(row["sum"])) for day, row in grouped.iterrows()}


def precision_at_top(labels: np.ndarray, scores: np.ndarray, share: float) -> float:
    """Share of true fraud among the `share` highest-scored claims (what an SIU team with that capacity sees)."""
    count = max(1, int(round(len(scores) * share)))
    top = np.argsort(-scores, kind="stable")[:count]
    return float(np.mean(labels[top]))


def detection_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, dtype=int)
    if labels.min() == labels.max():
        raise ValueError("the evaluation claims need both fraud and legitimate claims")
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "precision_at_1pct": precision_at_top(labels, scores, 0.01),
        "precision_at_5pct": precision_at_top(labels, scores, 0.05),
    }


def _thinned(x: np.ndarray, y: np.ndarray, points: int) -> tuple[list[float], list[float]]:
    """At most `points` evenly spaced points of the curve, both ends kept (rates only: no scores, no claims)."""
    kept = np.unique(np.linspace(0, len(x) - 1, min(points, len(x))).round().astype(int))
    return np.round(x[kept], 4).tolist(), np.round(y[kept], 4).tolist()


def roc_points(labels: np.ndarray, scores: np.ndarray, points: int = CURVE_POINTS) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates) of the ROC curve, thinned to at most `points` points."""
    from sklearn.metrics import roc_curve

    false_positive, true_positive, _ = roc_curve(np.asarray(labels, dtype=int), scores)
    return _thinned(false_positive, true_positive, points)


def pr_points(labels: np.ndarray, scores: np.ndarray, points: int = CURVE_POINTS) -> tuple[list[float], list[float]]:
    """(recalls, precisions) of the precision-recall curve, thinned to at most `points` points."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(np.asarray(labels, dtype=int), scores)
    return _thinned(recall, precision, points)


def recall_by_pattern(patterns: pd.Series, flagged: np.ndarray) -> dict[str, float]:
    """Per injected fraud pattern: the share of its claims that were flagged."""
    frame = pd.DataFrame({"pattern": patterns.to_numpy(), "flagged": np.asarray(flagged, dtype=bool)})
    frauds = frame[frame["pattern"].notna()]
    return {str(p): float(g["flagged"].mean()) for p, g in frauds.groupby("pattern", sort=True)}


def _encoded(frame: pd.DataFrame, columns: pd.Index | None = None) -> pd.DataFrame:
    """Numeric features as is (missing as -1), categoricals one-hot; aligned to `columns` when given."""
    numeric = frame[list(FRAUD_NUMERIC_FEATURES)].apply(pd.to_numeric, errors="coerce").astype(float)
    categorical = pd.get_dummies(frame[list(FRAUD_CATEGORICAL_FEATURES)].astype(str), dtype=float)
    encoded = pd.concat([numeric.fillna(-1.0), categorical], axis=1)
    return encoded if columns is None else encoded.reindex(columns=columns, fill_value=0.0)


class IsolationForestBaseline:
    """An IsolationForest on the autoencoders' features, fitted on their training claims, its p95 threshold from
    their calibration claims (as theirs); higher score = odder."""

    def __init__(self, train: pd.DataFrame, calibration: pd.DataFrame, seed: int = 42):
        from sklearn.ensemble import IsolationForest

        encoded = _encoded(train)
        self._columns = encoded.columns
        self._forest = IsolationForest(n_estimators=200, random_state=seed).fit(encoded)
        self.p95 = float(np.percentile(self.scores(calibration), 95))

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return -self._forest.score_samples(_encoded(frame, self._columns))
