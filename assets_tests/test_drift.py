"""PSI and the composite drift score, checked against a separate reference implementation and by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from healthcare_assets.domain import drift
from healthcare_assets.domain.drift import composite_drift, feature_psi, psi_report, relative_degradation


def reference_psi(reference: np.ndarray, current: np.ndarray, bins: int, eps: float) -> float:
    """Straightforward PSI: decile edges of the reference, values outside its range clipped into the outer bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    last_bin = len(edges) - 2

    def share(values, i):
        above = np.ones(len(values), bool) if i == 0 else values > edges[i]
        below = np.ones(len(values), bool) if i == last_bin else values <= edges[i + 1]
        return max(np.mean(above & below), eps)

    total = 0.0
    for i in range(last_bin + 1):
        r, c = share(reference, i), share(current, i)
        total += (c - r) * math.log(c / r)
    return total


@pytest.mark.parametrize(
    "shift, scale, bins",
    [(0.0, 1.0, 10), (0.3, 1.0, 10), (1.0, 1.5, 10), (0.5, 1.0, 5), (-2.0, 0.5, 20)],
)
def test_numeric_psi_equals_the_reference_implementation(shift, scale, bins):
    rng = np.random.default_rng(42)
    reference = rng.normal(size=5000)
    current = rng.normal(loc=shift, scale=scale, size=3000)
    result = feature_psi(pd.Series(reference), pd.Series(current), feature="claim_amount", bins=bins)
    assert result.psi == pytest.approx(reference_psi(reference, current, bins, drift.EPSILON), rel=1e-9)
    assert sum(result.reference_counts) == 5000 and sum(result.current_counts) == 3000
    assert len(result.edges) == bins - 1


def test_two_bin_numeric_case_by_hand():
    # reference 1..100: median edge 50.5, 50 % in each bin; current: 80 values <= 50.5, 20 above
    reference = pd.Series(np.arange(1, 101, dtype=float))
    current = pd.Series([10.0] * 80 + [90.0] * 20)
    result = feature_psi(reference, current, bins=2)
    assert result.edges == (50.5,)
    assert result.reference_counts == (50, 50, 0) and result.current_counts == (80, 20, 0)
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)  # 0.4159
    assert result.psi == pytest.approx(expected)
    assert result.psi == pytest.approx(0.41589, abs=1e-5)
    assert result.status == drift.ERROR


def test_identical_windows_have_zero_psi_and_outer_bins_are_open_ended():
    values = pd.Series(np.linspace(0, 1, 1000))
    assert feature_psi(values, values).psi == pytest.approx(0.0)
    far_out = feature_psi(values, pd.Series([-100.0, 100.0]), bins=4)
    assert far_out.current_counts == (1, 0, 0, 1, 0)  # below and above the reference range land in the outer bins


def test_duplicate_quantile_edges_collapse_into_fewer_bins():
    reference = pd.Series([0] * 900 + list(range(1, 101)), dtype=float)  # 90 % zeros
    result = feature_psi(reference, reference, bins=10)
    assert len(result.edges) == len(set(result.edges)) < 9
    assert result.psi == pytest.approx(0.0)


def test_categorical_psi_with_an_unseen_category_and_missing_values():
    reference = pd.Series(["F"] * 50 + ["M"] * 50)
    current = pd.Series(["F"] * 60 + ["M"] * 30 + ["X"] * 5 + [None] * 5)
    result = feature_psi(reference, current, feature="patient_gender")
    assert result.kind == "categorical"
    assert result.bins == ("F", "M", drift.OTHER, drift.UNSEEN, drift.MISSING)
    assert result.reference_counts == (50, 50, 0, 0, 0) and result.current_counts == (60, 30, 0, 5, 5)
    eps = drift.EPSILON
    expected = (
        (0.6 - 0.5) * math.log(0.6 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5) + 2 * (0.05 - eps) * math.log(0.05 / eps)
    )
    assert result.psi == pytest.approx(expected)


def test_rare_reference_categories_share_one_bin():
    # 40 codes at 2 % each and one at 20 %: only the common one keeps a bin of its own
    reference = pd.Series(["common"] * 20 + [f"rare{i}" for i in range(40) for _ in range(2)])
    current = pd.Series(["common"] * 10 + [f"rare{i}" for i in range(0, 40, 2) for _ in range(4)] + ["new"] * 10)
    result = feature_psi(reference, current, feature="procedure_code")
    assert result.bins == ("common", drift.OTHER, drift.UNSEEN, drift.MISSING)
    assert result.reference_counts == (20, 80, 0, 0) and result.current_counts == (10, 80, 10, 0)
    eps = drift.EPSILON
    expected = (0.1 - 0.2) * math.log(0.1 / 0.2) + 0 + (0.1 - eps) * math.log(0.1 / eps)
    assert result.psi == pytest.approx(expected)


@pytest.mark.parametrize("value, status", [(0.05, drift.OK), (0.1, drift.WARN), (0.19, drift.WARN), (0.2, drift.ERROR)])
def test_psi_status_thresholds(value, status):
    assert drift.psi_status(value) == status


def test_psi_report_covers_each_feature_and_names_missing_columns():
    reference = pd.DataFrame({"claim_amount": [1.0, 2.0, 3.0, 4.0], "claim_type": ["a", "b", "a", "b"]})
    report = psi_report(reference, reference, ["claim_amount", "claim_type"], bins=2)
    assert {name: r.kind for name, r in report.items()} == {"claim_amount": "numeric", "claim_type": "categorical"}
    with pytest.raises(ValueError, match="procedure_code"):
        psi_report(reference, reference, ["procedure_code"])


def test_composite_drift_formula_and_threshold():
    result = composite_drift([0.1, 0.3], [0.05, 0.4], relative_degradation(0.80, 0.72))
    assert result.statistical == pytest.approx(0.2)
    assert result.demographic == pytest.approx(0.4)
    assert result.performance == pytest.approx(0.1)
    assert result.score == pytest.approx(0.4 * 0.2 + 0.3 * 0.4 + 0.3 * 0.1)  # 0.23
    assert result.status == drift.OK
    heavy = composite_drift([0.5, 0.7], [1.8], relative_degradation(12.0, 15.0, higher_is_better=False))
    assert heavy.score == pytest.approx(0.4 * 0.6 + 0.3 * 1.0 + 0.3 * 0.25)  # demographic capped at 1
    assert heavy.status == drift.ERROR


def test_relative_degradation_ignores_improvements():
    assert relative_degradation(0.8, 0.9) == 0.0
    assert relative_degradation(15.0, 12.0, higher_is_better=False) == 0.0
    with pytest.raises(ValueError, match="undefined"):
        relative_degradation(0.0, 0.5)
