"""ClaimsTreeAutoencoder on claims whose features fit together, with injected misfits."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from healthcare_assets.domain.autoencoder import ClaimsTreeAutoencoder, TreeParams, recent_training_days
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


def test_thresholds_are_p95_and_p99_of_the_training_scores(fitted):
    train_scores, _ = fitted.compute_fraud_scores(_claims(500, 1))
    assert fitted.thresholds["p95"] == pytest.approx(np.percentile(train_scores, 95))
    assert fitted.thresholds["p99"] == pytest.approx(np.percentile(train_scores, 99))
    assert fitted.thresholds["p95"] < fitted.thresholds["p99"]
    scored = score_frame(fitted, _claims(300, 4, misfits=10))
    assert (scored["is_flagged_p99"] <= scored["is_flagged_p95"]).all()  # p99 flags are a subset of p95 flags
    assert (scored["is_flagged_p95"] == (scored["fraud_score"] > fitted.thresholds["p95"])).all()
    assert scored["score_percentile"].between(0, 100).all()
    above_p99 = scored.loc[scored["is_flagged_p99"], "score_percentile"]
    assert (above_p99 >= 99.0).all()


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


def _days(*claims: int) -> dict:
    return {date(2026, 1, 1) + timedelta(days=n): count for n, count in enumerate(claims)}


def test_training_window_keeps_the_newest_days_that_fit_the_cap():
    counts = _days(500, 400, 300, 200, 100)  # Jan 1 .. Jan 5
    first, first_validation = recent_training_days(counts, max_rows=650, validation_share=0.34)
    assert first == date(2026, 1, 3)  # 100 + 200 + 300 = 600 fits, + 400 would not
    assert first_validation == date(2026, 1, 5)  # one of the three days validates


def test_training_window_size_does_not_grow_with_history():
    """90 days of 1,100 claims and a 20,000 cap: 18 days, 4 of them validating (a window of the latest days)."""
    window = recent_training_days(_days(*[1_100] * 90), max_rows=20_000, validation_share=0.2)
    assert window == (date(2026, 3, 14), date(2026, 3, 28))
    longer = recent_training_days(_days(*[1_100] * 365), max_rows=20_000, validation_share=0.2)
    assert (longer[1] - longer[0]).days == (window[1] - window[0]).days


def test_training_window_always_has_a_training_and_a_validation_day():
    """Days larger than the cap still give one day each side rather than nothing to train on."""
    assert recent_training_days(_days(50_000, 50_000, 50_000), max_rows=20_000, validation_share=0.2) == (
        date(2026, 1, 2),
        date(2026, 1, 3),
    )
    with pytest.raises(ValueError, match="at least two days"):
        recent_training_days(_days(10), max_rows=20_000, validation_share=0.2)
