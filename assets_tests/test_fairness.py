"""Fairness analysis checked against fairlearn and hand-computed tables."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate
from sklearn.metrics import accuracy_score

from healthcare_assets.domain import fairness
from healthcare_assets.domain.fairness import FairnessAnalyzer, classifier_fairness


def _claims(rates: dict[str, dict[str, tuple[int, int]]], seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with scores 1.0 (flagged) or 0.0, built from {attribute: {group: (size, flagged)}} for one attribute.

    Only the first attribute drives the flags; the others are assigned at random.
    """
    (attribute, groups), *others = rates.items()
    rows, scores = [], []
    for group, (size, flagged) in groups.items():
        rows += [group] * size
        scores += [1.0] * flagged + [0.0] * (size - flagged)
    data = pd.DataFrame({attribute: rows})
    rng = np.random.default_rng(seed)
    for other, other_groups in others:
        data[other] = rng.choice(list(other_groups), size=len(data))
    return data, np.array(scores)


def test_flag_rates_disparate_impact_and_chi_square_match_a_hand_computed_table():
    # gender: F 2500 claims / 125 flagged (5 %), M 2000 / 200 (10 %), U 1000 / 80 (8 %); threshold: score 1.0
    data, scores = _claims({"patient_gender": {"F": (2500, 125), "M": (2000, 200), "U": (1000, 80)}})
    analyzer = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0)
    result = analyzer.analyze_all_attributes()["patient_gender"]
    by_group = {g.group: g for g in result.groups}
    assert result.reference_group == "F"  # the largest group
    assert by_group["F"].rate == pytest.approx(0.05) and by_group["F"].status == fairness.REFERENCE
    assert by_group["M"].disparate_impact == pytest.approx(2.0) and by_group["M"].status == fairness.BIAS
    assert by_group["U"].disparate_impact == pytest.approx(0.08 / 0.05) and by_group["U"].status == fairness.BIAS
    assert by_group["M"].compared_with == "F" and by_group["M"].comparison_rate == pytest.approx(0.05)
    # the reference itself is compared with the other groups pooled: 280 flags of 3000 claims
    assert by_group["F"].compared_with == fairness.OTHER_GROUPS
    assert by_group["F"].disparate_impact == pytest.approx(0.05 / (280 / 3000))
    # Pearson chi-square by hand: expected = row total * column total / n
    observed = np.array([[125, 2375], [200, 1800], [80, 920]], dtype=float)
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    assert result.chi_square == pytest.approx(((observed - expected) ** 2 / expected).sum())
    assert result.degrees_of_freedom == 2
    assert result.status == fairness.BIAS and not result.is_fair


def test_rates_and_ratio_agree_with_fairlearn_on_random_scores():
    rng = np.random.default_rng(3)
    n = 40000  # large enough that chance differences in 5 % flag rates stay far inside [0.8, 1.25]
    data = pd.DataFrame(
        {
            "patient_gender": rng.choice(["F", "M", "U"], size=n, p=[0.45, 0.45, 0.1]),
            "geographic_region": rng.choice(["Northeast", "Southeast", "Central", "Southwest", "Northwest"], size=n),
            "patient_age_group": rng.choice(["0-17", "18-34", "35-49", "50-64", "65+"], size=n),
        }
    )
    # region Southeast scores higher, so it is flagged more often
    scores = rng.normal(size=n) + np.where(data["geographic_region"] == "Southeast", 0.6, 0.0)
    analyzer = FairnessAnalyzer(data, scores, threshold_percentile=95)
    flagged = scores >= np.percentile(scores, 95)
    for attribute, result in analyzer.analyze_all_attributes().items():
        frame = MetricFrame(metrics=selection_rate, y_true=flagged, y_pred=flagged, sensitive_features=data[attribute])
        rates = frame.by_group.to_dict()
        assert {g.group: g.rate for g in result.groups} == pytest.approx(rates)
        # every other group's DI is its selection rate over the largest group's
        assert result.reference_group == data[attribute].value_counts().idxmax()
        others = {g.group: g.disparate_impact for g in result.groups if g.group != result.reference_group}
        assert others == pytest.approx(
            {g: rate / rates[result.reference_group] for g, rate in rates.items() if g in others}
        )
        ratio = demographic_parity_ratio(flagged, flagged, sensitive_features=data[attribute])
        assert min(rates.values()) / max(rates.values()) == pytest.approx(ratio)
    assert analyzer.biased_attributes == ["geographic_region"]
    assert not analyzer.fail_on_bias  # bias in one attribute only


def test_bias_in_two_attributes_fails_the_run():
    rng = np.random.default_rng(11)
    n = 4000
    data = pd.DataFrame(
        {
            "patient_gender": rng.choice(["F", "M"], size=n),
            "geographic_region": rng.choice(["Northeast", "Southeast"], size=n),
            "patient_age_group": rng.choice(["18-34", "35-49"], size=n),
        }
    )
    scores = (
        rng.normal(size=n) + 1.0 * (data["patient_gender"] == "M") + 1.0 * (data["geographic_region"] == "Southeast")
    )
    analyzer = FairnessAnalyzer(data, scores)
    assert sorted(analyzer.biased_attributes) == ["geographic_region", "patient_gender"]
    assert analyzer.fail_on_bias
    summary = analyzer.get_bias_summary()
    assert set(summary["attribute"]) == {"patient_gender", "geographic_region", "patient_age_group"}
    assert summary["size"].groupby(summary["attribute"]).sum().eq(n).all()


def test_small_groups_are_reported_with_their_status_and_left_out_of_the_gate():
    # U has 10 claims, all flagged: too small to judge, so it neither becomes the reference nor biases the attribute
    data, scores = _claims({"patient_gender": {"F": (300, 15), "M": (300, 16), "U": (10, 10)}})
    result = FairnessAnalyzer(
        data, scores, ["patient_gender"], score_threshold=1.0, min_group_size=30
    ).analyze_attribute("patient_gender")
    by_group = {g.group: g for g in result.groups}
    assert by_group["U"].status == fairness.INSUFFICIENT_DATA and by_group["U"].size == 10
    assert result.status == fairness.FAIR
    assert result.degrees_of_freedom == 1  # the test ran over F and M only


def test_configured_reference_group_flagged_less_is_not_biased_but_an_over_flagged_reference_is():
    # reference M (10 %): F at 5 % has DI 0.5, flagged less: reported, never bias; M itself, compared with the
    # other groups, is flagged twice as often: that is the bias
    data, scores = _claims({"patient_gender": {"F": (2000, 100), "M": (2000, 200)}})
    result = FairnessAnalyzer(
        data, scores, ["patient_gender"], score_threshold=1.0, reference_groups={"patient_gender": "M"}
    ).analyze_attribute("patient_gender")
    assert result.reference_group == "M"
    assert {g.group: g.disparate_impact for g in result.groups} == pytest.approx({"F": 0.5, "M": 2.0})
    lenient = FairnessAnalyzer(
        data, scores, ["patient_gender"], score_threshold=1.0, reference_groups={"patient_gender": "M"}, upper=2.5
    )
    assert lenient.analyze_attribute("patient_gender").biased_groups == []  # 2.0 is inside a band up to 2.5
    assert {g.group: g.status for g in result.groups} == {"F": fairness.BELOW_REFERENCE, "M": fairness.BIAS}
    assert result.biased_groups == ["M"] and result.below_reference_groups == ["F"]


@pytest.mark.parametrize("sizes", [(1900, 2100), (2100, 1900)], ids=["F smaller", "F larger"])
def test_the_verdict_does_not_depend_on_which_of_two_groups_is_the_larger(sizes):
    # F flagged at 10 %, M at 5 %: F is the biased group whether it is the reference (largest) or not
    f_size, m_size = sizes
    data, scores = _claims({"patient_gender": {"F": (f_size, f_size // 10), "M": (m_size, m_size // 20)}})
    result = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0).analyze_attribute("patient_gender")
    assert result.reference_group == ("F" if f_size > m_size else "M")
    assert result.biased_groups == ["F"]
    [f_row] = [g for g in result.groups if g.group == "F"]
    assert f_row.disparate_impact == pytest.approx(2.0, rel=0.01)


def test_a_zero_rate_group_that_would_have_been_the_reference_leaves_every_ratio_defined():
    # C (100 claims) has no flag: as the most favoured group (the four-fifths rule's reference) it would make every
    # other ratio infinite. The reference is the largest group A; C is simply flagged less.
    data, scores = _claims({"patient_gender": {"A": (2000, 100), "B": (1500, 72), "C": (100, 0)}})
    result = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0).analyze_attribute("patient_gender")
    by_group = {g.group: g for g in result.groups}
    assert result.reference_group == "A"
    assert by_group["C"].disparate_impact == 0.0 and by_group["C"].note is None
    assert by_group["B"].disparate_impact == pytest.approx(0.048 / 0.05) and by_group["B"].status == fairness.FAIR
    assert all(np.isfinite(g.disparate_impact) for g in result.groups)
    assert result.biased_groups == [] and result.is_fair


def test_a_below_average_group_is_reported_not_biased():
    # C is flagged at 3 % against 5 % for the others: out of band below, and significant
    data, scores = _claims({"patient_gender": {"A": (3000, 150), "B": (2000, 100), "C": (1000, 30)}})
    result = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0).analyze_attribute("patient_gender")
    by_group = {g.group: g for g in result.groups}
    assert by_group["C"].disparate_impact == pytest.approx(0.6) and by_group["C"].status == fairness.BELOW_REFERENCE
    assert by_group["A"].status == fairness.REFERENCE  # 5 % vs 130 / 3000 pooled: inside the band
    assert result.p_value < fairness.CHI_SQUARE_ALPHA
    assert result.status == fairness.WARNING and result.is_fair and result.biased_groups == []


def test_an_undefined_ratio_is_none_with_its_reason_and_still_judged():
    # the largest group A has no flag: B (10 %) against 0 has no ratio, but is flagged more beyond doubt;
    # C has no flag either: both rates 0, nothing to compare, fair
    data, scores = _claims({"patient_gender": {"A": (500, 0), "B": (300, 30), "C": (100, 0)}})
    result = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0).analyze_attribute("patient_gender")
    by_group = {g.group: g for g in result.groups}
    assert by_group["B"].disparate_impact is None and by_group["B"].note == fairness.ZERO_COMPARISON_RATE
    assert by_group["B"].status == fairness.BIAS
    assert by_group["C"].disparate_impact is None and by_group["C"].note == fairness.BOTH_RATES_ZERO
    assert by_group["C"].status == fairness.FAIR
    assert by_group["A"].disparate_impact == 0.0  # 0 / the others' 30 of 400
    assert result.max_disparate_impact == 0.0  # over the defined ratios only, never inf
    summary = fairness.bias_summary({"patient_gender": result})
    assert summary["disparate_impact"].isna().sum() == 2 and not np.isinf(summary["disparate_impact"].dropna()).any()


def test_an_out_of_band_ratio_on_a_handful_of_flags_is_not_significant_bias():
    # the same 5 % vs 10 % on 200 claims each (10 vs 20 flags): DI 2.0, but chi-square p > 0.05
    data, scores = _claims({"patient_gender": {"F": (200, 10), "M": (200, 20)}})
    result = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0).analyze_attribute("patient_gender")
    assert result.max_disparate_impact == pytest.approx(2.0) and result.p_value > fairness.CHI_SQUARE_ALPHA
    assert {g.group: g.status for g in result.groups} == {"F": fairness.REFERENCE, "M": fairness.NOT_SIGNIFICANT}
    assert result.biased_groups == [] and result.is_fair


def test_significant_but_small_difference_is_a_warning_not_bias():
    # 10 % vs 11.5 %: DI 1.15 is inside [0.8, 1.25] but with 20 000 claims per group the test is significant
    data, scores = _claims({"patient_gender": {"F": (20000, 2000), "M": (20000, 2300)}})
    result = FairnessAnalyzer(data, scores, ["patient_gender"], score_threshold=1.0).analyze_attribute("patient_gender")
    assert result.max_disparate_impact == pytest.approx(1.15)
    assert result.p_value < fairness.CHI_SQUARE_ALPHA
    assert result.status == fairness.WARNING and result.is_fair


def test_missing_attribute_values_form_their_own_group_and_bad_input_is_refused():
    data = pd.DataFrame({"patient_gender": ["F", None, "M", "F"]})
    result = FairnessAnalyzer(data, [0.1, 0.9, 0.2, 0.3], ["patient_gender"], min_group_size=1).analyze_attribute(
        "patient_gender"
    )
    assert {g.group for g in result.groups} == {"F", "M", fairness.MISSING_GROUP}
    with pytest.raises(ValueError, match="must align row by row"):
        FairnessAnalyzer(data, [0.1, 0.2], ["patient_gender"])
    with pytest.raises(ValueError, match="not in the data"):
        FairnessAnalyzer(data, [0.1, 0.9, 0.2, 0.3], ["patient_age_group"])
    with pytest.raises(ValueError, match="reference group 'X'"):
        FairnessAnalyzer(
            data, [0.1, 0.9, 0.2, 0.3], ["patient_gender"], reference_groups={"patient_gender": "X"}
        ).analyze_all_attributes()


def test_classifier_accuracy_and_selection_rate_per_group_agree_with_fairlearn():
    rng = np.random.default_rng(5)
    n = 3000
    data = pd.DataFrame({"patient_age_group": rng.choice(["18-34", "35-49", "50-64", "65+"], size=n)})
    truth = rng.random(n) < np.where(data["patient_age_group"] == "65+", 0.5, 0.2)
    predicted = np.where(rng.random(n) < 0.8, truth, ~truth)
    results = classifier_fairness(data, truth, predicted, ["patient_age_group"])
    frame = MetricFrame(
        metrics={"accuracy": accuracy_score, "selection_rate": selection_rate},
        y_true=truth,
        y_pred=predicted,
        sensitive_features=data["patient_age_group"],
    )
    groups = {g.group: g for g in results["patient_age_group"].groups}
    for group, row in frame.by_group.iterrows():
        assert groups[group].accuracy == pytest.approx(row["accuracy"])
        assert groups[group].rate == pytest.approx(row["selection_rate"])
    assert results["patient_age_group"].status == fairness.BIAS  # the oldest are selected far more often
    assert fairness.bias_summary(results)["accuracy"].notna().all()


def test_holm_adjusted_p_values_match_a_hand_computed_family():
    # sorted 0.005, 0.01, 0.03, 0.04 over m = 4 tests: 4 x 0.005, 3 x 0.01, max(previous, 2 x 0.03), max(previous, 0.04)
    adjusted = fairness.holm_adjusted([0.01, 0.04, 0.03, None, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert fairness.holm_adjusted([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, never decreasing
    assert fairness.holm_adjusted([0.2, 0.9]) == pytest.approx([0.4, 0.9])


def test_a_family_of_days_keeps_a_chance_difference_from_failing_the_gate_but_not_a_real_bias():
    # F 400 / 12 flagged (3 %), M 400 / 24 (6 %): DI 2.0 with p ~ 0.04 on its own
    marginal, marginal_scores = _claims({"patient_gender": {"F": (400, 12), "M": (400, 24)}})
    assert FairnessAnalyzer(marginal, marginal_scores, ["patient_gender"], score_threshold=1.0).biased_attributes
    # F 400 / 12 (3 %), M 400 / 60 (15 %): p far below any family's threshold
    strong, strong_scores = _claims({"patient_gender": {"F": (400, 12), "M": (400, 60)}})
    clean, clean_scores = _claims({"patient_gender": {"F": (400, 20), "M": (400, 20)}})
    parts = {"marginal": marginal, "strong": strong, **{f"clean {i}": clean for i in range(12)}}
    scores = {"marginal": marginal_scores, "strong": strong_scores} | {f"clean {i}": clean_scores for i in range(12)}
    parts = {key: part.assign(flagged=scores[key] == 1.0) for key, part in parts.items()}

    family = fairness.analyze_family(parts, "flagged", protected_attributes=["patient_gender"])
    assert family["marginal"].biased_attributes == []  # 14 tests: the chance difference is not confirmed
    marginal_groups = {g.group: g.status for g in family["marginal"].analyze_all_attributes()["patient_gender"].groups}
    assert marginal_groups["M"] == fairness.NOT_SIGNIFICANT
    assert family["strong"].biased_attributes == ["patient_gender"]
    assert all(family[f"clean {i}"].biased_attributes == [] for i in range(12))


def test_stored_flags_are_judged_as_given_and_must_align():
    # the flags that ship, not a recomputed threshold: 9 of 10 claims flagged is a 90 % rate
    data = pd.DataFrame({"patient_gender": ["F"] * 5 + ["M"] * 5})
    flagged = np.array([True] * 9 + [False])
    analyzer = FairnessAnalyzer(data, flagged=flagged, protected_attributes=["patient_gender"], min_group_size=1)
    assert analyzer.score_threshold is None
    assert {g.group: g.rate for g in analyzer.analyze_attribute("patient_gender").groups} == {"F": 1.0, "M": 0.8}
    with pytest.raises(ValueError, match="either fraud_scores"):
        FairnessAnalyzer(data, np.zeros(10), ["patient_gender"], flagged=flagged)
    with pytest.raises(ValueError, match="9 flags for 10 rows"):
        FairnessAnalyzer(data, flagged=flagged[:9], protected_attributes=["patient_gender"])


def _labelled(groups: dict[str, tuple[int, int, int, int]]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """{age group: (legitimate claims, of them flagged, frauds, of them flagged)} -> rows, flags, fraud labels."""
    rows, flags, frauds = [], [], []
    for group, (legitimate, false_positives, fraud, caught) in groups.items():
        rows += [group] * (legitimate + fraud)
        flags += [True] * false_positives + [False] * (legitimate - false_positives)
        flags += [True] * caught + [False] * (fraud - caught)
        frauds += [False] * legitimate + [True] * fraud
    return pd.DataFrame({"patient_age_group": rows}), np.array(flags), np.array(frauds)


def test_false_positive_rate_parity_detects_a_doubled_rate_that_flag_rates_hide():
    # both groups are flagged at 8 %, so disparate impact is 1.0; but the 65+ group's flags all fall on
    # legitimate claims (8 % FPR) while the other group's include its 40 frauds (40 of 960 legitimate, 4.2 %)
    data, flags, frauds = _labelled({"65+": (1000, 80, 0, 0), "35-49": (960, 40, 40, 40)})
    flag_rates = FairnessAnalyzer(data, flagged=flags, protected_attributes=["patient_age_group"])
    assert flag_rates.analyze_attribute("patient_age_group").max_disparate_impact == pytest.approx(1.0)

    result = fairness.false_positive_rate_fairness(data, flags, frauds, protected_attributes=["patient_age_group"])
    by_group = {g.group: g for g in result["patient_age_group"].groups}
    assert by_group["65+"].size == 1000 and by_group["35-49"].size == 960  # legitimate claims only
    assert by_group["65+"].rate == pytest.approx(0.08) and by_group["35-49"].rate == pytest.approx(40 / 960)
    assert by_group["65+"].disparate_impact == pytest.approx(0.08 / (40 / 960))  # the reference vs the rest
    assert by_group["65+"].status == fairness.BIAS and result["patient_age_group"].biased_groups == ["65+"]

    equal = fairness.false_positive_rate_fairness(
        *_labelled({"65+": (1000, 40, 0, 0), "35-49": (960, 39, 40, 40)}), protected_attributes=["patient_age_group"]
    )
    assert equal["patient_age_group"].biased_groups == []
    with pytest.raises(ValueError, match="no legitimate rows"):
        fairness.false_positive_rate_fairness(data.head(2), flags[:2], np.array([True, True]))
