"""ClaimsTreeAutoencoder: a claim is suspicious when its features do not fit together.

For every feature a gradient-boosted model (CatBoost or XGBoost) predicts it from
all the other features. Context features (by default the patient's demographics,
FRAUD_CONTEXT_FEATURES) are inputs only: they condition what the other features
should look like (a well-child visit fits a child), but are never reconstructed,
so belonging to a small demographic group is no reconstruction error and raises
no claim's score. A claim's per-feature reconstruction error is

* numeric: |t(x) - t(x̂)| with t = signed log1p, so amounts and counts are compared on a ratio scale;
* categorical: 1 - the predicted probability of the observed class (1 for a class never seen).

Each error is turned into a robust z-score against the errors on a calibration
set of claims no per-feature model trained on (median and median absolute
deviation), negative values clipped to 0, so no feature dominates by its units.
The fraud score is the mean of those z-scores; the thresholds are the 95th and
99th percentiles of the calibration scores. Scores of claims a model trained on
are lower than those of new claims (trees fit their training rows), so thresholds
taken from them would flag far more than 5 % of every new day. Pure Python: no
Dagster, no Spark.
"""

from __future__ import annotations

import pickle  # nosec B403: only models this code wrote itself are loaded
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .features import FRAUD_CATEGORICAL_FEATURES, FRAUD_CONTEXT_FEATURES, FRAUD_NUMERIC_FEATURES

MODEL_TYPES = ("catboost", "xgboost")
MISSING_CATEGORY = "__missing__"
MODEL_FILE = "claims_tree_autoencoder.pkl"
# The error scale of a feature is at least this share of its spread: a feature the others determine exactly in
# the training days (claims in the last 30 and 90 days are the same count until the history is 30 days long)
# has near-zero calibration errors, and without a floor any small change on a new day is thousands of "z".
MIN_ERROR_SCALE = 0.1
# Percentiles of the calibration scores kept with the model, so scoring can report a claim's percentile.
_PERCENTILE_GRID = np.linspace(0.0, 100.0, 1001)


@dataclass(frozen=True)
class TreeParams:
    """Boosting knobs shared by both libraries (modest: 17 models train in one step)."""

    iterations: int = 120
    depth: int = 6
    learning_rate: float = 0.15
    threads: int = 1


@dataclass
class _ErrorScale:
    median: float
    scale: float


@dataclass
class _FeatureModel:
    feature: str
    categorical: bool
    model: Any | None  # None when the training target had a single value
    classes: list[str] | None = None  # categorical targets: class of each predicted column
    constant: Any = None


class ClaimsTreeAutoencoder:
    """Per-feature tree models whose normalised reconstruction error is the fraud score."""

    def __init__(
        self,
        model_type: str = "catboost",
        cat_features: Sequence[str] = FRAUD_CATEGORICAL_FEATURES,
        num_features: Sequence[str] = FRAUD_NUMERIC_FEATURES,
        params: TreeParams | None = None,
        seed: int = 42,
        context_features: Sequence[str] = FRAUD_CONTEXT_FEATURES,
    ):
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
        overlap = set(cat_features) & set(num_features)
        if overlap:
            raise ValueError(f"features cannot be both categorical and numeric: {sorted(overlap)}")
        self.model_type = model_type
        self.cat_features = list(cat_features)
        self.num_features = list(num_features)
        # those of the context features this model uses: inputs of every model, target of none
        self.context_features = [f for f in context_features if f in self.features]
        self.params = params or TreeParams()
        self.seed = seed
        self._models: dict[str, _FeatureModel] = {}
        self._error_scales: dict[str, _ErrorScale] = {}
        self._category_levels: dict[str, list[str]] = {}
        self.thresholds: dict[str, float] = {}
        self._train_score_percentiles: np.ndarray | None = None  # of the calibration scores
        self.training_summary: dict[str, float] = {}
        self.training_days: tuple[date, date] | None = None  # first and last day of the claims it learnt from

    # --------------------------------------------------------------------- public API
    @property
    def features(self) -> list[str]:
        return [*self.num_features, *self.cat_features]

    @property
    def targets(self) -> list[str]:
        """The features reconstructed: each one's error counts towards the fraud score."""
        return [f for f in self.features if f not in self.context_features]

    @property
    def is_fitted(self) -> bool:
        return bool(self._models)

    def fit(
        self,
        train_df: pd.DataFrame,
        calibration_df: pd.DataFrame,
        progress: Callable[[str], None] | None = None,
        training_days: tuple[date, date] | None = None,
    ) -> ClaimsTreeAutoencoder:
        """Trains one model per feature on `train_df`; the error scales, thresholds and score percentiles come
        from `calibration_df`, claims none of the models trained on. `training_days` records the first and last
        day of the claims both frames were drawn from."""
        self._require_columns(train_df, "train_df")
        self._require_columns(calibration_df, "calibration_df")
        if len(train_df) < 10 or len(calibration_df) < 5:
            raise ValueError(
                f"too few claims to train on ({len(train_df)} train, {len(calibration_df)} calibration): "
                "materialise more days of gold.claim_features"
            )
        train = self._prepare(train_df, learn_levels=True)
        calibration = self._prepare(calibration_df)
        for number, feature in enumerate(self.targets, start=1):
            if progress is not None:
                progress(f"{self.model_type}: model {number} of {len(self.targets)} ({feature})")
            self._models[feature] = self._fit_feature(train, feature)
        calibration_errors = self._raw_errors(calibration)
        for feature in self.targets:
            errors = calibration_errors[feature].to_numpy(dtype=float)
            median = float(np.median(errors))
            deviation = np.abs(errors - median)
            floor = MIN_ERROR_SCALE * self._spread(train, feature)
            scale = max(1.4826 * float(np.median(deviation)), float(np.mean(deviation)), floor, 1e-6)
            self._error_scales[feature] = _ErrorScale(median, scale)
        calibration_scores, _ = self.compute_fraud_scores(calibration_df)
        self._train_score_percentiles = np.percentile(calibration_scores, _PERCENTILE_GRID)
        self.thresholds = {
            "p95": float(np.percentile(calibration_scores, 95)),
            "p99": float(np.percentile(calibration_scores, 99)),
        }
        self.training_days = training_days
        self.training_summary = {
            "train_rows": float(len(train_df)),
            "calibration_rows": float(len(calibration_df)),
            "calibration_score_mean": float(np.mean(calibration_scores)),
            "calibration_flag_rate_p95": float(np.mean(calibration_scores > self.thresholds["p95"])),
        }
        return self

    def feature_errors(self, df: pd.DataFrame) -> pd.DataFrame:
        """Normalised per-feature errors (robust z-scores, >= 0): which features drove each claim's score."""
        self._require_fitted()
        raw = self._raw_errors(self._prepare(df))
        normalised = {
            feature: np.clip((raw[feature] - scale.median) / scale.scale, 0.0, None)
            for feature, scale in self._error_scales.items()
        }
        return pd.DataFrame(normalised, index=df.index)[self.targets]

    def compute_fraud_scores(self, df: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """(fraud score per claim, normalised per-feature errors)."""
        errors = self.feature_errors(df)
        return errors.mean(axis=1).to_numpy(dtype=float), errors

    def score_percentiles(self, scores: np.ndarray) -> np.ndarray:
        """Where each score falls in the calibration score distribution, 0..100."""
        self._require_fitted()
        grid = self._train_score_percentiles
        if grid is None:  # set at the end of fit, so only a model whose fit failed lacks it
            raise RuntimeError("the autoencoder has no calibration score distribution: fit it again")
        position = np.searchsorted(grid, scores, side="right")
        return np.round(_PERCENTILE_GRID[np.clip(position - 1, 0, len(grid) - 1)], 1)

    @staticmethod
    def top_features(errors: pd.DataFrame, k: int = 3) -> list[list[str]]:
        """The k features with the largest normalised error per claim (ties broken by feature order)."""
        values = errors.to_numpy(dtype=float)
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        names = np.array(errors.columns, dtype=object)
        return [[names[i] for i in row if values[r, i] > 0] for r, row in enumerate(order)]

    def save(self, path: str | Path) -> Path:
        """Writes the fitted model into the folder `path`; returns the file written."""
        self._require_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / MODEL_FILE
        with open(target, "wb") as file:
            pickle.dump(self, file, protocol=pickle.HIGHEST_PROTOCOL)
        return target

    @classmethod
    def load(cls, path: str | Path) -> ClaimsTreeAutoencoder:
        source = Path(path)
        if source.is_dir():
            source = source / MODEL_FILE
        with open(source, "rb") as file:
            model = pickle.load(file)  # noqa: S301  # nosec B301: a file this class wrote
        if not isinstance(model, cls):
            raise TypeError(f"{source} does not hold a {cls.__name__}")
        model.__dict__.setdefault("context_features", [])  # saved before context features: every one a target
        model.__dict__.setdefault("training_days", None)  # saved before the training days were recorded
        return model

    # --------------------------------------------------------------------- internals
    def _require_columns(self, df: pd.DataFrame, name: str) -> None:
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise ValueError(f"{name} lacks the feature columns {missing}")

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(
                "the autoencoder is not fitted: call fit(train_df, calibration_df) or load a saved model"
            )

    def _prepare(self, df: pd.DataFrame, learn_levels: bool = False) -> pd.DataFrame:
        """Numeric features as float (signed log1p), categoricals as strings with a missing marker."""
        self._require_columns(df, "the frame")
        frame = pd.DataFrame(index=df.index)
        for feature in self.num_features:
            values = pd.to_numeric(df[feature], errors="coerce").astype(float).to_numpy()
            frame[feature] = np.sign(values) * np.log1p(np.abs(values))
        for feature in self.cat_features:
            frame[feature] = df[feature].astype(object).where(df[feature].notna(), MISSING_CATEGORY).astype(str)
            if learn_levels:
                self._category_levels[feature] = sorted(frame[feature].unique())
        return frame

    def _spread(self, train: pd.DataFrame, feature: str) -> float:
        """How far a numeric feature's values range: their standard deviation on the signed-log scale errors are
        measured on. 0 for a categorical one: a class the models give no chance is evidence however rare."""
        if feature in self.cat_features:
            return 0.0
        values = train[feature].to_numpy(dtype=float)
        return float(np.nanstd(values)) if np.isfinite(values).any() else 0.0

    def _inputs(self, frame: pd.DataFrame, target: str) -> pd.DataFrame:
        inputs = frame.drop(columns=[target])
        if self.model_type == "xgboost":
            # fixed category levels so training and scoring agree on the codes; unseen values become missing
            for feature in self.cat_features:
                if feature in inputs:
                    inputs[feature] = pd.Categorical(inputs[feature], categories=self._category_levels[feature])
        return inputs

    def _fit_feature(self, train: pd.DataFrame, feature: str) -> _FeatureModel:
        categorical = feature in self.cat_features
        target = train[feature]
        known = target.notna()
        inputs, target = self._inputs(train.loc[known], feature), target[known]
        if target.nunique() < 2:
            constant = target.iloc[0] if len(target) else (MISSING_CATEGORY if categorical else 0.0)
            return _FeatureModel(feature, categorical, None, [str(constant)] if categorical else None, constant)
        cat_inputs = [c for c in self.cat_features if c != feature]
        if categorical:
            classes = sorted(target.unique())
            codes = target.map({c: i for i, c in enumerate(classes)}).to_numpy()
            model = self._classifier(cat_inputs, len(classes))
            model.fit(inputs, codes)
            return _FeatureModel(feature, True, model, classes)
        model = self._regressor(cat_inputs)
        model.fit(inputs, target.to_numpy())
        return _FeatureModel(feature, False, model)

    def _classifier(self, cat_inputs: list[str], n_classes: int):
        """A classifier for a categorical feature with `n_classes` levels."""
        if self.model_type == "catboost":
            from catboost import CatBoostClassifier

            # CatBoost's multi-class cost grows with classes x leaves: shallower, shorter for many-class targets
            many = n_classes > 8
            options = self._catboost_options(cat_inputs, "MultiClass" if n_classes > 2 else "Logloss")
            if many:
                options.update(iterations=self.params.iterations // 2, depth=min(self.params.depth, 4))
            return CatBoostClassifier(**options)
        from xgboost import XGBClassifier

        return XGBClassifier(**self._xgboost_options())

    def _regressor(self, cat_inputs: list[str]):
        """A regressor for a numeric feature."""
        if self.model_type == "catboost":
            from catboost import CatBoostRegressor

            return CatBoostRegressor(**self._catboost_options(cat_inputs, "RMSE"))
        from xgboost import XGBRegressor

        return XGBRegressor(**self._xgboost_options())

    def _catboost_options(self, cat_inputs: list[str], loss_function: str) -> dict:
        p = self.params
        return {
            "iterations": p.iterations,
            "depth": p.depth,
            "learning_rate": p.learning_rate,
            "loss_function": loss_function,
            "cat_features": cat_inputs,
            "max_ctr_complexity": 1,  # no categorical combinations: several times faster, little loss here
            "random_seed": self.seed,
            "thread_count": p.threads,
            "allow_writing_files": False,
            "verbose": False,
        }

    def _xgboost_options(self) -> dict:
        p = self.params
        return {
            "n_estimators": p.iterations,
            "max_depth": p.depth,
            "learning_rate": p.learning_rate,
            "tree_method": "hist",
            "enable_categorical": True,
            "max_cat_to_onehot": 8,
            "random_state": self.seed,
            "n_jobs": p.threads,
        }

    def _raw_errors(self, frame: pd.DataFrame) -> pd.DataFrame:
        errors = {}
        for feature in self.targets:
            fitted = self._models[feature]
            actual = frame[feature]
            if fitted.categorical:
                errors[feature] = 1.0 - self._class_probability(fitted, frame, actual)
            else:
                if fitted.model is None:
                    predicted = np.full(len(frame), float(fitted.constant))
                else:
                    predicted = fitted.model.predict(self._inputs(frame, feature))
                error = np.abs(actual.to_numpy(dtype=float) - predicted)
                errors[feature] = np.nan_to_num(error, nan=0.0)  # a missing value is not evidence
        return pd.DataFrame(errors, index=frame.index)

    def _class_probability(self, fitted: _FeatureModel, frame: pd.DataFrame, actual: pd.Series) -> np.ndarray:
        """Predicted probability of the observed class (0 for a class the model never saw)."""
        classes = fitted.classes
        if classes is None:
            raise ValueError(f"{fitted.feature} is not a categorical feature: it has no class probabilities")
        if fitted.model is None:
            return (actual.to_numpy() == classes[0]).astype(float)
        probabilities = np.asarray(fitted.model.predict_proba(self._inputs(frame, fitted.feature)), dtype=float)
        column = actual.map({c: i for i, c in enumerate(classes)})
        seen = column.notna().to_numpy()
        result = np.zeros(len(frame))
        result[seen] = probabilities[np.flatnonzero(seen), column[seen].astype(int).to_numpy()]
        return result
