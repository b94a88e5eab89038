"""The fairness gates on hand-made fairness rows: one model's gate judges that model's rows only, an undefined
ratio is shown as such (never a sentinel), rates are shown as percentages with their denominators, and the
false-positive-rate parity gate warns."""

import json
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd

from healthcare_assets.checks.governance import (
    chi_square_result,
    disparate_impact_result,
    fairness_check_specs,
    false_positive_rate_result,
)
from healthcare_assets.domain import fairness

DAY = date(2026, 1, 5)


def _rows(model_type: str, groups: dict[str, tuple[int, int]], version: str = "run-1") -> list[dict]:
    """Fairness rows of one day for region groups {group: (claims, flagged)}, as the fairness asset writes them."""
    regions, flags = [], []
    for group, (size, flagged) in groups.items():
        regions += [group] * size
        flags += [True] * flagged + [False] * (size - flagged)
    analyzer = fairness.FairnessAnalyzer(
        pd.DataFrame({"geographic_region": regions}),
        flagged=np.array(flags),
        protected_attributes=["geographic_region"],
    )
    return [
        {"ingest_date": DAY, "model_type": model_type, "model_version": version, **row}
        for row in fairness.table_rows(analyzer.analyze_all_attributes())
    ]


FAIR = {"Central": (2000, 100), "Southwest": (1500, 80), "Northeast": (1000, 48)}
BIASED = {"Central": (2000, 100), "Southwest": (1500, 240), "Northeast": (1000, 48)}  # Southwest at 16 %


def _metadata(result: dg.AssetCheckResult) -> dict:
    return {
        name: value.value if isinstance(value, dg.MetadataValue) else value for name, value in result.metadata.items()
    }


def test_each_model_has_its_own_gates():
    names = {spec.name for spec in fairness_check_specs(dg.AssetKey(["governance", "fairness_monitoring"]), ["a", "b"])}
    assert names == {
        f"{gate}_{model}"
        for gate in ("disparate_impact_within_band", "flags_independent_of_group", "false_positive_rate_parity")
        for model in ("a", "b")
    }


def test_a_biased_model_fails_its_own_gate_and_not_the_other_models():
    xgboost, catboost = _rows("xgboost", BIASED, "run-x"), _rows("catboost", FAIR, "run-c")
    failed, passed = disparate_impact_result("xgboost", xgboost), disparate_impact_result("catboost", catboost)
    assert failed.check_name == "disparate_impact_within_band_xgboost" and not failed.passed
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert passed.check_name == "disparate_impact_within_band_catboost" and passed.passed
    assert _metadata(passed)["model_versions"] == ["run-c"] and _metadata(failed)["model_versions"] == ["run-x"]

    [worst] = _metadata(failed)["worst_biased"]
    # the rate as a percentage with its denominator, and what it was compared with
    assert worst == {
        "day": "2026-01-05",
        "attribute": "geographic_region",
        "group": "Southwest",
        "claims": 1500,
        "flagged": 240,
        "flag_rate": "16.0%",
        "compared_with": "Central",
        "comparison_rate": "5.0%",
        "disparate_impact": 3.2,
        "status": "bias",
    }
    assert "geographic_region=Southwest: 16.0% of 1500 claims vs 5.0% (Central), ratio 3.2" in failed.description
    assert not chi_square_result("xgboost", xgboost).passed and chi_square_result("catboost", catboost).passed


def test_an_undefined_ratio_is_reported_as_undefined_never_as_a_sentinel():
    # the largest region has no flag on the day: the others' ratios are undefined
    rows = _rows("xgboost", {"Central": (600, 0), "Southwest": (300, 45), "Northeast": (100, 0)})
    result = disparate_impact_result("xgboost", rows)
    metadata = _metadata(result)
    assert not result.passed  # Southwest flagged at 15 % against none: confirmed, whatever the ratio
    [worst] = metadata["worst_biased"]
    assert worst["group"] == "Southwest" and worst["disparate_impact"] == fairness.ZERO_COMPARISON_RATE
    assert metadata["undefined_ratios"] == 2 and metadata["max_disparate_impact"] == 0.0
    text = json.dumps(metadata, default=str)
    assert "inf" not in text.lower().replace("info", "") and "1e9" not in text and "1000000000" not in text


def test_a_group_flagged_less_is_listed_but_passes():
    rows = _rows("catboost", {"Central": (3000, 150), "Southwest": (2000, 100), "Northeast": (1000, 30)})
    result = disparate_impact_result("catboost", rows)
    metadata = _metadata(result)
    assert result.passed and metadata["biased_groups"] == 0 and metadata["below_reference_groups"] == 1
    [below] = metadata["flagged_less_than_reference"]
    assert below["group"] == "Northeast" and below["flag_rate"] == "3.0%" and below["status"] == "below_reference"


def test_the_false_positive_rate_gate_warns_on_a_doubled_rate_and_when_nothing_is_labelled():
    regions = ["65+"] * 1000 + ["35-49"] * 1000
    flags = np.array([True] * 80 + [False] * 920 + [True] * 80 + [False] * 920)
    frauds = np.array([False] * 1000 + [True] * 40 + [False] * 960)  # 40 of the second group's flags are fraud
    results = fairness.false_positive_rate_fairness(
        pd.DataFrame({"patient_age_group": regions}), flags, frauds, protected_attributes=["patient_age_group"]
    )
    groups = fairness.table_rows(results)
    result = false_positive_rate_result("xgboost", groups, ["2026-01-01", "2026-01-02"])
    metadata = _metadata(result)
    assert result.check_name == "false_positive_rate_parity_xgboost"
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert metadata["legitimate_claims"] == 1960 and metadata["labelled_days"] == 2
    [worst] = metadata["worst_groups"]
    assert worst["group"] == "65+" and worst["false_positive_rate"] == "8.0%" and worst["legitimate_claims"] == 1000
    assert worst["comparison_rate"] == "4.2%" and worst["fpr_ratio"] == 1.92 and worst["status"] == "above_parity"

    unlabelled = false_positive_rate_result("xgboost", [], [])
    assert not unlabelled.passed and unlabelled.description.startswith("not judged")
    only_frauds = false_positive_rate_result("xgboost", [], ["2026-01-01"])  # labelled, but no legitimate claim
    assert not only_frauds.passed and only_frauds.description.startswith("not judged")
