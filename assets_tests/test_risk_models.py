"""The actuarial label feed, model training, metrics and gates, on generator data without Spark."""

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from healthcare_assets.domain import risk
from healthcare_assets.domain.synthetic import (
    HIGH_RISK_SCORE,
    SyntheticConfig,
    actuarial_risk_scores,
    member_roster,
    risk_scores_file_path,
    write_landing_day,
)

CONFIG = SyntheticConfig(num_members=1_500)
DAY = date(2026, 1, 14)
CONDITIONS = [column.removeprefix("has_") for column in risk.NUMERIC_FEATURES if column.startswith("has_")]


def roster_features(config: SyntheticConfig, day: date) -> pd.DataFrame:
    """Feature rows shaped like gold.member_features from the roster, joined with the day's labels.

    Coded conditions miss a fifth of the true ones (as 14 days of claims do) and utilisation is a
    Poisson draw around the member's expected claims, so the target is not a function of the features.
    """
    roster = member_roster(config)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "member_id": roster["member_id"],
            "member_key": roster["member_id"].str.lower(),
            "age": roster["age_at_roster"].astype(float),
            "bmi": roster["bmi"],
            "is_smoker": roster["smoker"] == "Y",
            "gender": roster["gender"],
            "plan_code": roster["plan_code"],
            "geographic_region": roster["geographic_region"],
            "age_group": roster["age_group"],
        }
    )
    for name in CONDITIONS:
        frame[f"has_{name}"] = roster[f"has_{name}"] & (rng.random(len(roster)) < 0.8)
    frame["chronic_condition_count"] = frame[[f"has_{name}" for name in CONDITIONS]].sum(axis=1).astype(float)
    claims = rng.poisson(2.8 * roster["latent_risk"])
    for column in risk.NUMERIC_FEATURES:
        if column not in frame:
            frame[column] = 0.0
    frame["num_claims"] = claims.astype(float)
    frame["total_paid_amount"] = claims * 900.0 * roster["latent_risk"] ** 0.3
    frame["total_cost"] = frame["total_paid_amount"]
    labels = actuarial_risk_scores(config, day)
    return frame.merge(labels, on="member_id").drop(columns="member_id")


@pytest.fixture(scope="module")
def members() -> pd.DataFrame:
    return roster_features(CONFIG, DAY)


@pytest.fixture(scope="module")
def trained(members):
    train, test = risk.split(members)
    models = risk.train(train, train)
    return test, models.predict(test)


def test_label_feed_is_deterministic_bounded_and_consistent(tmp_path):
    labels = actuarial_risk_scores(CONFIG, DAY)
    pd.testing.assert_frame_equal(labels, actuarial_risk_scores(CONFIG, DAY))
    assert labels["member_id"].is_unique
    assert labels["risk_score"].between(0, 100).all()
    assert (labels["high_risk"] == (labels["risk_score"] >= HIGH_RISK_SCORE)).all()
    assert 0.08 < labels["high_risk"].mean() < 0.25
    assert (labels["expected_annual_cost"] > 0).all()
    # a member's score does not change from day to day; members enrolling later appear later
    later = actuarial_risk_scores(CONFIG, date(2026, 3, 1)).set_index("member_id")
    common = labels.set_index("member_id").index.intersection(later.index)
    assert (labels.set_index("member_id").loc[common, "risk_score"] == later.loc[common, "risk_score"]).all()
    assert len(later) != len(labels)
    # it lands beside the other feeds and holds exactly the frame
    write_landing_day(CONFIG, DAY, tmp_path)
    landed = pd.read_csv(tmp_path / risk_scores_file_path(DAY))
    assert landed["member_id"].tolist() == labels["member_id"].tolist()
    assert np.allclose(landed["risk_score"], labels["risk_score"])


def test_label_rises_with_the_documented_risk_factors():
    roster = member_roster(CONFIG)
    labels = actuarial_risk_scores(CONFIG, DAY).merge(roster, on="member_id")
    assert labels["risk_score"].corr(np.log(labels["latent_risk"])) > 0.95
    by_conditions = labels.groupby(labels["chronic_count"].clip(upper=3))["risk_score"].mean()
    assert by_conditions.is_monotonic_increasing
    assert labels["expected_annual_cost"].corr(labels["latent_risk"]) > 0.9


def test_bias_knob_disturbs_only_the_groups_scores():
    biased = replace(CONFIG, bias_group=("geographic_region", "Southwest"), bias_strength=2.0)
    plain = actuarial_risk_scores(CONFIG, DAY).set_index("member_id")
    skewed = actuarial_risk_scores(biased, DAY).set_index("member_id")
    region = member_roster(CONFIG).set_index("member_id").loc[plain.index, "geographic_region"]
    changed = plain["risk_score"] != skewed["risk_score"]
    assert not changed[region != "Southwest"].any()
    assert changed[region == "Southwest"].mean() > 0.8


def test_default_data_passes_every_promotion_gate_with_margin(trained):
    test, predictions = trained
    metrics = risk.metrics(test, predictions)
    gates = risk.evaluate_gates(metrics)
    assert [gate.name for gate in gates] == [
        "risk_score_r2_gate",
        "risk_score_mae_gate",
        "high_risk_accuracy_gate",
        "high_risk_balanced_accuracy_gate",
        "high_risk_roc_auc_gate",
    ]
    assert all(gate.passed for gate in gates), [gate.describe() for gate in gates]
    # accuracy is read beside what always predicting "not high risk" scores
    assert metrics["majority_baseline_accuracy"] == pytest.approx(1 - test["high_risk"].mean(), abs=1e-4)
    assert metrics["high_risk_accuracy"] > metrics["majority_baseline_accuracy"]
    assert metrics["risk_score_r2"] >= risk.MIN_R2 + 0.1
    assert metrics["total_cost_r2"] > 0.5
    assert set(predictions.columns) == set(risk.PREDICTION_COLUMNS)
    assert predictions["risk_score"].between(0, 100).all()
    assert predictions["high_risk_score"].between(0, 1).all()
    assert (predictions["high_risk_prediction"] == (predictions["high_risk_score"] >= 0.5)).all()


def test_degraded_model_fails_the_risk_score_gates(members):
    train, test = risk.split(members)
    degraded = risk.train(train, train, risk.TrainingParams(n_estimators=1))
    gates = {gate.name: gate for gate in risk.evaluate_gates(risk.metrics(test, degraded.predict(test)))}
    assert not gates["risk_score_r2_gate"].passed
    assert gates["risk_score_r2_gate"].margin < 0
    assert not gates["risk_score_mae_gate"].passed


def test_a_classifier_that_never_predicts_high_risk_fails_the_promotion_gates(members):
    from sklearn.dummy import DummyClassifier

    train, test = risk.split(members)
    fitted = risk.train(train, train)
    # a real, trivial classifier: always the majority class ("not high risk"), a constant probability
    never = DummyClassifier(strategy="most_frequent").fit(risk.model_matrix(train).fillna(-1.0), train["high_risk"])
    trivial = replace(fitted, high_risk=never)
    predictions = trivial.predict(test)
    assert not predictions["high_risk_prediction"].any()
    metrics = risk.metrics(test, predictions)
    gates = {gate.name: gate for gate in risk.evaluate_gates(metrics)}
    # its accuracy is the majority baseline, far above the 0.60 gate: accuracy alone would promote it
    assert metrics["high_risk_accuracy"] == metrics["majority_baseline_accuracy"] > risk.MIN_HIGH_RISK_ACCURACY
    assert gates["high_risk_accuracy_gate"].passed
    assert gates["high_risk_accuracy_gate"].baseline == metrics["majority_baseline_accuracy"]
    assert "majority_baseline_accuracy" in gates["high_risk_accuracy_gate"].describe()
    for name in ("high_risk_balanced_accuracy_gate", "high_risk_roc_auc_gate"):
        assert gates[name].observed == 0.5 and not gates[name].passed and gates[name].margin < 0


def test_a_metric_that_cannot_be_computed_fails_its_gate(members):
    _, test = risk.split(members)
    only_low_risk = test[~test["high_risk"]]
    predictions = risk.train(*[risk.split(members)[0]] * 2).predict(only_low_risk)
    metrics = risk.metrics(only_low_risk, predictions)
    assert "high_risk_roc_auc" not in metrics  # one class only: ROC-AUC is undefined
    gate = {g.name: g for g in risk.evaluate_gates(metrics)}["high_risk_roc_auc_gate"]
    assert not gate.passed and gate.margin is None and "undefined" in gate.describe()


def test_the_spark_hold_out_matches_the_training_split(members, spark):
    from pyspark.sql import functions as F

    from healthcare_assets.transforms.risk import is_test_member

    keys = spark.createDataFrame(members[["member_key"]])
    held_out = {row[0] for row in keys.where(is_test_member(F.col("member_key"), risk.TEST_SHARE)).collect()}
    assert held_out == set(risk.split(members)[1]["member_key"])


def test_shuffled_labels_fail_the_r2_gate(members):
    shuffled = members.copy()
    for column in risk.LABEL_COLUMNS:  # the same permutation for every label column
        shuffled[column] = members[column].sample(frac=1, random_state=1).to_numpy()
    train, test = risk.split(shuffled)
    models = risk.train(train, train)
    assert not risk.evaluate_gates(risk.metrics(test, models.predict(test)))[0].passed


def test_gate_margins_and_descriptions():
    r2 = risk.PROMOTION_GATES[0].evaluate(0.75)
    assert (r2.passed, r2.margin) == (True, 0.05)
    mae = risk.PROMOTION_GATES[1].evaluate(16.5)
    assert (mae.passed, mae.margin) == (False, -1.5)
    assert "FAILED" in mae.describe()


def test_bias_knob_breaks_accuracy_parity_for_the_group(members):
    _, clean_test = risk.split(members)
    clean_models = risk.train(*[risk.split(members)[0]] * 2)
    clean = risk.accuracy_by_group(clean_test, clean_test, clean_models.predict(clean_test))
    assert risk.groups_below_parity(clean).empty

    biased = roster_features(replace(CONFIG, bias_group=("geographic_region", "Southwest"), bias_strength=2.0), DAY)
    train, test = risk.split(biased)
    models = risk.train(train, train)
    table = risk.accuracy_by_group(test, test, models.predict(test))
    below = risk.groups_below_parity(table)
    assert below[["attribute", "group"]].values.tolist() == [["geographic_region", "Southwest"]]
    assert set(table["attribute"]) == {"gender", "geographic_region", "age_group"}


def test_split_is_stable_per_member(members):
    _, test = risk.split(members)
    _, test_of_half = risk.split(members.iloc[::2])
    assert set(test_of_half["member_key"]) <= set(test["member_key"])
    assert 0.2 < len(test) / len(members) < 0.3
