"""ClaimsTreeAutoencoder on claims whose features fit together, with injected misfits."""

import numpy as np
import pandas as pd
import pytest

from healthcare_assets.domain import autoencoder
from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder, TreeParams
from healthcare_assets.domain.autoencoder_pyfunc import score_frame
from healthcare_assets.domain.fraud_evaluation import detection_metrics, precision_at_top, recall_by_pattern

CATEGORICAL = ["diagnosis_code", "procedure_code", "patient_gender"]
NUMERIC = ["claim_amount", "patient_age", "lines_same_visit"]
# the demographics (FRAUD_CONTEXT_FEATURES) are inputs, not reconstructed
TARGETS = ["claim_amount", "lines_same_visit", "diagnosis_code", "procedure_code"]
FEES = {"99213": 90.0, "99214": 130.0, "80053": 28.0}
DIAGNOSIS_PROCEDURE = {"J06.9": "99213", "I10": "99214", "E11.9": "80053"}
FAST = TreeParams(iterations=40, depth=4, learning_rate=0.3)


def _claims(n: int, seed: int, misfits: int = 0) -> pd.DataFrame:
    """Diagnosis fixes the procedure, procedure the amount; misfits get a wrong procedure billed at 4x."""
    rng = np.random.default_rng(seed)
    diagnosis = rng.choice(list(DIAGNOSIS_PROCEDURE), n)
    procedure = np.array([DIAGNOSIS_PROCEDURE[d] for d in diagnosis], dtype=object)
    amount = np.array([FEES[p] for p in procedure]) * rng.lognormal(0, 0.1, n)
    frame = pd.DataFrame(
        {
            "diagnosis_code": diagnosis,
            "procedure_code": procedure,
            "claim_amount": amount.round(2),
            "patient_age": rng.integers(0, 90, n),
            "patient_gender": rng.choice(["F", "M", "U"], n, p=[0.52, 0.46, 0.02]),  # independent of the rest
            "lines_same_visit": np.ones(n, dtype=int),
            "is_misfit": False,
        }
    )
    rows = rng.choice(n, misfits, replace=False)
    frame.loc[rows, "procedure_code"] = "99214"
    frame.loc[rows, "diagnosis_code"] = "J06.9"
    frame.loc[rows, "claim_amount"] = (FEES["99214"] * 4).__round__(2)
    frame.loc[rows, "lines_same_visit"] = 6
    frame.loc[rows, "is_misfit"] = True
    return frame


def _fit(model_type: str, seed: int = 7) -> ClaimsTreeAutoencoder:
    model = ClaimsTreeAutoencoder(model_type, CATEGORICAL, NUMERIC, params=FAST, seed=seed)
    return model.fit(_claims(500, 1), _claims(150, 2))


@pytest.fixture(scope="module", params=["catboost", "xgboost"])
def fitted(request) -> ClaimsTreeAutoencoder:
    return _fit(request.param)


def test_misfit_claims_score_higher_and_name_the_features_that_do_not_fit(fitted):
    claims = _claims(400, 3, misfits=20)
    scores, errors = fitted.compute_fraud_scores(claims)
    misfit = claims["is_misfit"].to_numpy()
    assert np.isfinite(scores).all() and (scores >= 0).all()
    assert scores[misfit].mean() > 3 * scores[~misfit].mean()
    assert detection_metrics(misfit, scores)["roc_auc"] > 0.95
    assert list(errors.columns) == TARGETS
    top = ClaimsTreeAutoencoder.top_features(errors[misfit], k=3)
    assert all({"claim_amount", "lines_same_visit", "procedure_code", "diagnosis_code"} & set(names) for names in top)


def test_thresholds_are_p95_and_p99_of_the_calibration_scores(fitted):
    calibration_scores, _ = fitted.compute_fraud_scores(_claims(150, 2))
    assert fitted.thresholds["p95"] == pytest.approx(np.percentile(calibration_scores, 95))
    assert fitted.thresholds["p99"] == pytest.approx(np.percentile(calibration_scores, 99))
    assert fitted.thresholds["p95"] < fitted.thresholds["p99"]
    assert fitted.training_summary["calibration_rows"] == 150
    scored = score_frame(fitted, _claims(300, 4, misfits=10))
    assert (scored["is_flagged_p99"] <= scored["is_flagged_p95"]).all()  # p99 flags are a subset of p95 flags
    assert (scored["is_flagged_p95"] == (scored["fraud_score"] > fitted.thresholds["p95"])).all()
    assert scored["score_percentile"].between(0, 100).all()
    above_p99 = scored.loc[scored["is_flagged_p99"], "score_percentile"]
    assert (above_p99 >= 99.0).all()


def test_calibrated_thresholds_flag_about_5_percent_of_new_claims_where_in_sample_ones_flag_more(fitted):
    """The models fit their own training claims better than new ones: a p95 taken from training scores sits too
    low and flags far more than 5 % of a new day; the calibration claims were never fitted, like a new day."""
    new_day = _claims(4000, 11)
    scores, _ = fitted.compute_fraud_scores(new_day)
    train_scores, _ = fitted.compute_fraud_scores(_claims(500, 1))
    in_sample_p95 = np.percentile(train_scores, 95)
    assert in_sample_p95 < fitted.thresholds["p95"]
    assert 0.02 <= np.mean(scores > fitted.thresholds["p95"]) <= 0.10
    assert np.mean(scores > in_sample_p95) > np.mean(scores > fitted.thresholds["p95"])


def _with_rates(claims: pd.DataFrame, per_30_days: float, seed: int) -> pd.DataFrame:
    """Claim rates over 30 and 90 days while the history is shorter than 30 days: the same count per day of
    history, so the 90-day rate is exactly 3 x the 30-day one, in steps of `per_30_days`."""
    counts = np.random.default_rng(seed).poisson(2, len(claims))
    return claims.assign(claim_rate_30d=counts * per_30_days, claim_rate_90d=counts * per_30_days * 3)


@pytest.mark.parametrize("model_type", ["catboost", "xgboost"])
def test_an_exactly_determined_feature_cannot_swamp_the_score_on_unseen_values(model_type, monkeypatch):
    """Trained where the 90-day rate is exactly 3 x the 30-day one in steps of 7.5, a day in steps of 6 falls
    between the trees' splits. The calibration errors are near zero, so without a floor under the error scale
    those misses are thousands of robust z-units; with it they are a few."""
    numeric = [*NUMERIC, "claim_rate_30d", "claim_rate_90d"]

    def mean_rate_error() -> float:
        model = ClaimsTreeAutoencoder(model_type, CATEGORICAL, numeric, params=FAST, seed=7)
        model.fit(_with_rates(_claims(500, 1), 7.5, 1), _with_rates(_claims(150, 2), 7.5, 2))
        errors = model.feature_errors(_with_rates(_claims(1000, 12), 6.0, 3))
        return float(errors[["claim_rate_30d", "claim_rate_90d"]].to_numpy().mean())

    floored = mean_rate_error()
    monkeypatch.setattr(autoencoder, "MIN_ERROR_SCALE", 0.0)
    assert floored < 10 and mean_rate_error() > 5 * floored


def test_save_and_load_give_identical_scores(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = ClaimsTreeAutoencoder.load(tmp_path / "model")
    claims = _claims(200, 5, misfits=5)
    np.testing.assert_array_equal(loaded.compute_fraud_scores(claims)[0], fitted.compute_fraud_scores(claims)[0])
    assert loaded.thresholds == fitted.thresholds and loaded.features == fitted.features


@pytest.mark.parametrize("model_type", ["catboost", "xgboost"])
def test_same_seed_same_model(model_type):
    claims = _claims(200, 6, misfits=5)
    first, second = _fit(model_type).compute_fraud_scores(claims)[0], _fit(model_type).compute_fraud_scores(claims)[0]
    np.testing.assert_array_equal(first, second)


def test_unseen_category_is_a_full_error_and_missing_numbers_are_no_evidence(fitted):
    claims = _claims(50, 8)
    claims.loc[0, "procedure_code"] = "00000"
    claims.loc[1, "lines_same_visit"] = np.nan
    errors = fitted.feature_errors(claims)
    raw_top = ClaimsTreeAutoencoder.top_features(errors.iloc[[0]], k=1)
    assert raw_top == [["procedure_code"]]
    assert errors.loc[1, "lines_same_visit"] == 0.0


def test_demographics_are_context_so_belonging_to_a_small_group_is_no_misfit(fitted):
    """Reconstructed, gender would be a misfit for every claim of the 2 % with gender U (a demographic bias on
    clean claims); as context it is an input of every model and no part of the score."""
    claims = _claims(3000, 9)
    small_group = (claims["patient_gender"] == "U").to_numpy()
    assert 30 <= small_group.sum() <= 90
    scores, errors = fitted.compute_fraud_scores(claims)
    assert fitted.context_features == ["patient_age", "patient_gender"] and list(errors.columns) == TARGETS
    reconstructing = ClaimsTreeAutoencoder(fitted.model_type, CATEGORICAL, NUMERIC, params=FAST, context_features=())
    naive_scores, naive_errors = reconstructing.fit(_claims(500, 1), _claims(150, 2)).compute_fraud_scores(claims)
    gender_error = naive_errors["patient_gender"].to_numpy()
    assert np.median(gender_error[small_group]) > np.percentile(gender_error[~small_group], 95)
    naive_ratio = naive_scores[small_group].mean() / naive_scores[~small_group].mean()
    assert naive_ratio > 1.3 and scores[small_group].mean() / scores[~small_group].mean() < naive_ratio


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="model_type"):
        ClaimsTreeAutoencoder("lightgbm")
    model = ClaimsTreeAutoencoder("xgboost", CATEGORICAL, NUMERIC, params=FAST)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.compute_fraud_scores(_claims(10, 1))
    with pytest.raises(ValueError, match="lacks the feature columns"):
        model.fit(_claims(100, 1).drop(columns=["patient_age"]), _claims(50, 2))


def test_evaluation_metrics():
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.0, 0.05, 0.15, 0.25])
    assert precision_at_top(labels, scores, 0.2) == 0.5
    assert detection_metrics(labels, scores)["roc_auc"] == pytest.approx(1 - 1 / 16)
    patterns = pd.Series(["upcoding", None, "unbundling", None, *([None] * 6)])
    assert recall_by_pattern(patterns, scores > 0.75) == {"unbundling": 0.0, "upcoding": 1.0}
