"""Member risk models: a 0-100 risk-score regressor, a high-risk classifier and a predicted-total-cost regressor.

Pure Python over pandas frames shaped like `gold.member_features` (no Dagster,
no Spark). Labels come from the payer's actuarial risk file (see
`synthetic.actuarial_risk_scores`), never from a feature column. The three
estimators are small scikit-learn histogram gradient-boosting models and are
shipped together as one MLflow pyfunc (`risk_pyfunc.MemberRiskModel`) so the registry's
champion/challenger aliases move all three at once.

Promotion gates (seed 000): risk score R^2 >= 0.70 and MAE <= 15 points,
high-risk accuracy >= 0.60. Accuracy alone is passed by a classifier that never
predicts high risk (the majority class is about 86 % of members), so the majority
baseline is recorded beside it and balanced accuracy and ROC-AUC are gates too:
a constant classifier scores 0.5 on both. Monitoring: fewer than 50 predictions a
day or a risk-score MAE above 15 on labelled recent data of held-out members (the
model did not train on them; the hash split below says who they are) is an error.
Bias testing: high-risk accuracy per demographic group, flagged when a group is
more than 0.10 below the overall accuracy.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from healthcare_assets.domain.features import CHRONIC_CONDITIONS, MEMBER_UTILISATION_AMOUNTS, MEMBER_UTILISATION_COUNTS
from healthcare_assets.domain.sources import GENDERS, PLAN_CODES

# --- thresholds -------------------------------------------------------------------
MIN_R2 = 0.70
MAX_MAE = 15.0
MIN_HIGH_RISK_ACCURACY = 0.60
MIN_BALANCED_ACCURACY = 0.70  # mean of the recalls of both classes: 0.5 for any constant classifier
MIN_HIGH_RISK_ROC_AUC = 0.80  # 0.5 for a constant score
MIN_DAILY_PREDICTIONS = 50
MAX_MONITORED_MAE = 15.0
MAX_GROUP_ACCURACY_GAP = 0.10
MIN_GROUP_MEMBERS = 50  # below this many held-out members a group's accuracy is too noisy to judge
HIGH_RISK_CUT = 60.0  # the label's cut; the classifier's decision threshold is 0.5 on its probability
# Accuracy per group is reported for all three; parity is judged on gender and region only, because age
# legitimately drives risk and accuracy by age group follows each group's high-risk rate.
BIAS_GROUP_COLUMNS = ("gender", "geographic_region", "age_group")
PARITY_GROUP_COLUMNS = ("gender", "geographic_region")
TEST_SHARE = 0.25
# How the hold-out is drawn, recorded with every model so monitoring can judge held-out members only.
SPLIT_RULE = "sha256(member_key)[:8] / 0xFFFFFFFF < test_share"

# --- features ---------------------------------------------------------------------
# De-identified member attributes and utilisation; the member key and region are not features
# (region is a protected attribute used for bias testing only).
NUMERIC_FEATURES = (
    "age",
    "bmi",
    "is_smoker",
    *(f"has_{name}" for name in CHRONIC_CONDITIONS),
    "chronic_condition_count",
    *MEMBER_UTILISATION_COUNTS,
    *MEMBER_UTILISATION_AMOUNTS,
    "total_cost",
)
CATEGORICAL_FEATURES = {"gender": GENDERS, "plan_code": PLAN_CODES}
FEATURE_COLUMNS = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)  # columns of gold.member_features the model reads
LABEL_COLUMNS = ("risk_score", "high_risk", "expected_annual_cost")
PREDICTION_COLUMNS = ("risk_score", "high_risk_prediction", "high_risk_score", "predicted_total_cost")


def model_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """Numeric design matrix: numeric features as float, categoricals one-hot over their fixed code lists."""
    matrix = features[list(NUMERIC_FEATURES)].astype(float)
    for column, codes in CATEGORICAL_FEATURES.items():
        for code in codes:
            matrix[f"{column}_{code}"] = (features[column] == code).astype(float)
    return matrix


@dataclass(frozen=True)
class TrainingParams:
    """Hyper-parameters shared by the three estimators."""

    n_estimators: int = 150
    learning_rate: float = 0.08
    max_depth: int = 3
    subsample: float = 0.8
    seed: int = 7


class Regressor(Protocol):
    """A fitted scikit-learn style regressor."""

    def predict(self, matrix: pd.DataFrame) -> np.ndarray: ...


class ProbabilisticClassifier(Protocol):
    """A fitted scikit-learn style classifier: one probability column per class."""

    def predict_proba(self, matrix: pd.DataFrame) -> np.ndarray: ...


@dataclass
class RiskModels:
    """The three fitted estimators; `predict` gives the prediction columns for member feature rows."""

    risk_score: Regressor
    high_risk: ProbabilisticClassifier
    total_cost: Regressor  # fitted on log1p(cost)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        matrix = model_matrix(features).fillna(-1.0)
        high_risk_score = self.high_risk.predict_proba(matrix)[:, 1]
        return pd.DataFrame(
            {
                "risk_score": np.clip(self.risk_score.predict(matrix), 0.0, 100.0).round(2),
                "high_risk_prediction": high_risk_score >= 0.5,
                "high_risk_score": high_risk_score.round(4),
                "predicted_total_cost": np.expm1(self.total_cost.predict(matrix)).clip(0.0).round(2),
            },
            index=features.index,
        )


def train(features: pd.DataFrame, labels: pd.DataFrame, params: TrainingParams = TrainingParams()) -> RiskModels:
    """Fits the three estimators on member feature rows and their aligned labels."""
    # Classic (single-threaded) gradient boosting: a second or two on a few thousand members, and it does
    # not compete for cores with the Spark engine the way OpenMP-threaded estimators do.
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    matrix = model_matrix(features).fillna(-1.0)  # a missing BMI becomes its own value
    common = {
        "n_estimators": params.n_estimators,
        "learning_rate": params.learning_rate,
        "max_depth": params.max_depth,
        "subsample": params.subsample,
        "random_state": params.seed,
    }
    return RiskModels(
        risk_score=GradientBoostingRegressor(**common).fit(matrix, labels["risk_score"]),
        high_risk=GradientBoostingClassifier(**common).fit(matrix, labels["high_risk"].astype(bool)),
        total_cost=GradientBoostingRegressor(**common).fit(matrix, np.log1p(labels["expected_annual_cost"])),
    )


def is_test_member(member_key: str, test_share: float = TEST_SHARE) -> bool:
    """Deterministic hold-out: a member is in the test set when their key hashes below the share."""
    bucket = int(hashlib.sha256(member_key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < test_share


def split(frame: pd.DataFrame, test_share: float = TEST_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test rows, stable for a member whatever else is in the frame."""
    in_test = frame["member_key"].map(lambda key: is_test_member(key, test_share)).to_numpy(dtype=bool)
    return frame[~in_test].reset_index(drop=True), frame[in_test].reset_index(drop=True)


def metrics(labels: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """Risk-score R^2 and MAE; high-risk accuracy beside the majority-class baseline, balanced accuracy and
    ROC-AUC (only when both classes occur); cost R^2 and MAE; over aligned rows."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        mean_absolute_error,
        r2_score,
        roc_auc_score,
    )

    high_risk = labels["high_risk"].astype(bool).to_numpy()
    predicted = predictions["high_risk_prediction"].astype(bool).to_numpy()
    result = {
        "risk_score_r2": r2_score(labels["risk_score"], predictions["risk_score"]),
        "risk_score_mae": mean_absolute_error(labels["risk_score"], predictions["risk_score"]),
        "high_risk_accuracy": accuracy_score(high_risk, predicted),
        # what always predicting the commoner class scores: accuracy must be read against it
        "majority_baseline_accuracy": max(high_risk.mean(), 1 - high_risk.mean()),
        "total_cost_r2": r2_score(labels["expected_annual_cost"], predictions["predicted_total_cost"]),
        "total_cost_mae": mean_absolute_error(labels["expected_annual_cost"], predictions["predicted_total_cost"]),
        "high_risk_rate": float(high_risk.mean()),
    }
    if len(set(high_risk)) == 2:
        result["high_risk_balanced_accuracy"] = balanced_accuracy_score(high_risk, predicted)
        result["high_risk_roc_auc"] = roc_auc_score(high_risk, predictions["high_risk_score"])
    return {name: round(float(value), 4) for name, value in result.items()}


@dataclass(frozen=True)
class Gate:
    """One promotion or monitoring rule evaluated on a metric, optionally shown beside a baseline metric."""

    name: str
    metric: str
    threshold: float
    higher_is_better: bool
    observed: float = field(default=float("nan"))  # NaN when the metric is undefined: the gate fails
    baseline_metric: str | None = None
    baseline: float | None = None

    @property
    def passed(self) -> bool:
        return self.observed >= self.threshold if self.higher_is_better else self.observed <= self.threshold

    @property
    def margin(self) -> float | None:
        """How far the metric is on the good side of the threshold (negative when the gate fails)."""
        if math.isnan(self.observed):
            return None
        difference = self.observed - self.threshold
        return round(difference if self.higher_is_better else -difference, 4)

    def evaluate(self, observed: float, baseline: float | None = None) -> Gate:
        return Gate(
            self.name,
            self.metric,
            self.threshold,
            self.higher_is_better,
            float(observed),
            self.baseline_metric,
            baseline,
        )

    def evaluate_on(self, metrics: Mapping[str, float]) -> Gate:
        """The gate on a run's recorded metrics; a metric that could not be computed fails it."""
        baseline = metrics.get(self.baseline_metric) if self.baseline_metric else None
        return self.evaluate(metrics.get(self.metric, float("nan")), baseline)

    def describe(self) -> str:
        relation = ">=" if self.higher_is_better else "<="
        verdict = "passed" if self.passed else "FAILED"
        value = (
            "undefined (one class only in the held-out members)"
            if math.isnan(self.observed)
            else f"{self.observed:.4f}"
        )
        beside = f"; {self.baseline_metric} {self.baseline:.4f}" if self.baseline is not None else ""
        return f"{self.metric} = {value} (must be {relation} {self.threshold}{beside}): {verdict}"


PROMOTION_GATES = (
    Gate("risk_score_r2_gate", "risk_score_r2", MIN_R2, higher_is_better=True),
    Gate("risk_score_mae_gate", "risk_score_mae", MAX_MAE, higher_is_better=False),
    Gate(
        "high_risk_accuracy_gate",
        "high_risk_accuracy",
        MIN_HIGH_RISK_ACCURACY,
        higher_is_better=True,
        baseline_metric="majority_baseline_accuracy",
    ),
    Gate("high_risk_balanced_accuracy_gate", "high_risk_balanced_accuracy", MIN_BALANCED_ACCURACY, True),
    Gate("high_risk_roc_auc_gate", "high_risk_roc_auc", MIN_HIGH_RISK_ROC_AUC, True),
)


def evaluate_gates(observed: Mapping[str, float]) -> list[Gate]:
    return [gate.evaluate_on(observed) for gate in PROMOTION_GATES]


def accuracy_by_group(
    features: pd.DataFrame, labels: pd.DataFrame, predictions: pd.DataFrame, columns=BIAS_GROUP_COLUMNS
) -> pd.DataFrame:
    """High-risk accuracy per demographic group: attribute, group, members, high-risk rate, accuracy, gap to overall."""
    correct = labels["high_risk"].astype(bool).to_numpy() == predictions["high_risk_prediction"].to_numpy()
    overall = float(correct.mean())
    rows = []
    for column in columns:
        values = features[column].astype(str).to_numpy()
        for group in sorted(set(values)):
            in_group = values == group
            accuracy = float(correct[in_group].mean())
            rows.append(
                {
                    "attribute": column,
                    "group": group,
                    "members": int(in_group.sum()),
                    "high_risk_rate": round(float(labels["high_risk"].astype(bool).to_numpy()[in_group].mean()), 4),
                    "accuracy": round(accuracy, 4),
                    "gap_to_overall": round(overall - accuracy, 4),
                }
            )
    return pd.DataFrame(rows)


def groups_below_parity(table: pd.DataFrame, min_members: int = MIN_GROUP_MEMBERS) -> pd.DataFrame:
    """Gender and region groups (with enough members to judge) more than MAX_GROUP_ACCURACY_GAP below overall."""
    judged = table["attribute"].isin(PARITY_GROUP_COLUMNS) & (table["members"] >= min_members)
    return table[judged & (table["gap_to_overall"] > MAX_GROUP_ACCURACY_GAP)]
