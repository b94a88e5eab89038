"""Scoring fraud detectors against labelled claims: ranking quality, precision at the top, recall per pattern."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .features import FRAUD_CATEGORICAL_FEATURES, FRAUD_NUMERIC_FEATURES

# points kept per curve: smooth at chart size, a few kilobytes of metadata whatever the number of claims
CURVE_POINTS = 200


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


def isolation_forest_scores(train: pd.DataFrame, evaluate: pd.DataFrame, seed: int = 42) -> np.ndarray:
    """Baseline: an IsolationForest on the same features (numeric as is, categoricals one-hot); higher = odder."""
    from sklearn.ensemble import IsolationForest

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        numeric = frame[list(FRAUD_NUMERIC_FEATURES)].apply(pd.to_numeric, errors="coerce").astype(float)
        categorical = pd.get_dummies(frame[list(FRAUD_CATEGORICAL_FEATURES)].astype(str), dtype=float)
        return pd.concat([numeric.fillna(-1.0), categorical], axis=1)

    train_x = encode(train)
    evaluate_x = encode(evaluate).reindex(columns=train_x.columns, fill_value=0.0)
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(train_x)
    return -forest.score_samples(evaluate_x)
