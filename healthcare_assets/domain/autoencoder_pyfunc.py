"""The autoencoder as an MLflow pyfunc model: feature columns in, score, percentile, flags and reasons out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from .autoencoder import ClaimsTreeAutoencoder

TOP_FEATURES = 3


def score_frame(model: ClaimsTreeAutoencoder, features: pd.DataFrame) -> pd.DataFrame:
    """Per claim: fraud score, its percentile among calibration scores, p95/p99 flags and the top features."""
    scores, errors = model.compute_fraud_scores(features)
    return pd.DataFrame(
        {
            "fraud_score": scores,
            "score_percentile": model.score_percentiles(scores),
            "is_flagged_p95": scores > model.thresholds["p95"],
            "is_flagged_p99": scores > model.thresholds["p99"],
            "top_features": [",".join(names) for names in ClaimsTreeAutoencoder.top_features(errors, TOP_FEATURES)],
        },
        index=features.index,
    )


class AutoencoderPyfunc(PythonModel):
    """Loads the pickled ClaimsTreeAutoencoder from the model's `autoencoder` artifact."""

    def load_context(self, context) -> None:
        self.autoencoder = ClaimsTreeAutoencoder.load(context.artifacts["autoencoder"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return score_frame(self.autoencoder, model_input)


def example_output(model: ClaimsTreeAutoencoder, features: pd.DataFrame) -> pd.DataFrame:
    frame = score_frame(model, features)
    return frame.astype({"fraud_score": np.float64, "score_percentile": np.float64})
