"""Fairness of fraud flags and risk classifications across protected groups.

A claim is *flagged* when the model that ships flags it (the scored table's stored `is_flagged_p95`), or, for
an analysis of raw scores, when its score reaches a threshold (`threshold_percentile` of the scores or an
explicit `score_threshold`). Being flagged is the adverse outcome, so per protected attribute:

* flag rate of every group (flagged / group size);
* the reference group: the largest group large enough to judge, unless one is configured. Its rate is the
  best-measured one and is not zero on any realistic day (the most favoured group, the usual four-fifths
  reference, is often a small group with no flag at all, which makes every other ratio infinite);
* disparate impact (DI) of a group = its flag rate / the reference group's flag rate, and of the reference group
  itself = its rate / the pooled rate of the other judged groups, so an over-flagged largest group is caught too
  and the verdict does not flip with which of two near-equal groups (gender) is the larger that day;
* the harm is being flagged MORE: a DI above DI_UPPER is bias when the chi-square test below confirms the
  difference (p < CHI_SQUARE_ALPHA; unconfirmed: `not_significant`, since a handful of flags per group swings a
  ratio far out of band). A group flagged less (DI below DI_LOWER, confirmed) is `below_reference`: reported,
  never bias. When many days and attributes are judged at once (`analyze_family`), the confirming p-value is
  Holm-Bonferroni adjusted over all of them, so a clean run of 14 days x 3 attributes raises no chance alarm;
* a ratio whose comparison rate is 0 is undefined: `disparate_impact` is None and `note` says why (never inf or
  a sentinel). A group flagged at all against a comparison rate of 0 is still bias once the test confirms it;
* Pearson's chi-square test of independence of flag and group (no continuity correction) over the groups large
  enough to judge; p < CHI_SQUARE_ALPHA is a warning (dependence in either direction);
* groups smaller than `min_group_size` are reported with status `insufficient_data` and take no part in the
  reference choice, the DI gate or the test.

False-positive-rate parity is the same analysis over the legitimate claims of labelled days: a group's flag
rate there is its false-positive rate, and its ratio to the reference group's is judged against FPR_RATIO_UPPER.

`fail_on_bias`: bias in more than MAX_BIASED_ATTRIBUTES attributes fails the run.
Every threshold of the fairness gates is a constant below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency

from healthcare_assets.domain.features import PROTECTED_ATTRIBUTES

# --- governance thresholds (seeds 002/003) -------------------------------------------------
DI_LOWER = 0.8
DI_UPPER = 1.25
# a group's false-positive rate above this multiple of the reference group's is a parity warning
FPR_RATIO_UPPER = DI_UPPER
CHI_SQUARE_ALPHA = 0.05
DEFAULT_THRESHOLD_PERCENTILE = 95.0
DEFAULT_MIN_GROUP_SIZE = 30
# bias in more than this many attributes fails the run (`fail_on_bias`)
MAX_BIASED_ATTRIBUTES = 1

MISSING_GROUP = "<missing>"
OTHER_GROUPS = "<other groups>"  # what the reference group's own ratio compares it with

# group statuses
FAIR = "fair"
BIAS = "bias"  # flagged more than its comparison, beyond the band, confirmed by the test
BELOW_REFERENCE = "below_reference"  # flagged less than the reference, beyond the band, confirmed: never bias
NOT_SIGNIFICANT = "not_significant"  # DI out of band, but the chi-square test does not confirm it
REFERENCE = "reference"
INSUFFICIENT_DATA = "insufficient_data"
JUDGED = (FAIR, BIAS, BELOW_REFERENCE, NOT_SIGNIFICANT, REFERENCE)  # statuses of groups large enough to judge
# attribute statuses (plus FAIR, BIAS, INSUFFICIENT_DATA)
WARNING = "warning"

# why a disparate impact is undefined
ZERO_COMPARISON_RATE = "undefined: the comparison rate is 0"
BOTH_RATES_ZERO = "undefined: both rates are 0"
NOTHING_TO_COMPARE = "undefined: no other group large enough to compare with"


@dataclass(frozen=True)
class GroupFairness:
    attribute: str
    group: str
    size: int
    positives: int  # flagged claims, or high-risk predictions for a classifier
    rate: float  # flag rate / selection rate
    compared_with: str | None  # the reference group, or OTHER_GROUPS for the reference group itself
    comparison_rate: float | None
    disparate_impact: float | None  # rate / comparison_rate; None when undefined (see `note`)
    status: str
    note: str | None = None  # why the disparate impact is undefined
    accuracy: float | None = None  # classifiers only


@dataclass(frozen=True)
class AttributeFairness:
    attribute: str
    reference_group: str | None
    groups: tuple[GroupFairness, ...]
    chi_square: float | None
    p_value: float | None
    confirming_p_value: float | None  # the p-value that confirms an out-of-band DI (Holm-adjusted in a family)
    degrees_of_freedom: int | None
    min_disparate_impact: float | None
    max_disparate_impact: float | None
    status: str

    @property
    def is_fair(self) -> bool:
        return self.status != BIAS

    @property
    def biased_groups(self) -> list[str]:
        return [g.group for g in self.groups if g.status == BIAS]

    @property
    def below_reference_groups(self) -> list[str]:
        return [g.group for g in self.groups if g.status == BELOW_REFERENCE]


def group_labels(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), MISSING_GROUP).astype(str)


def disparate_impact(rate: float, comparison_rate: float | None) -> tuple[float | None, str | None]:
    """rate / comparison_rate, or None with the reason when the ratio is undefined."""
    if comparison_rate is None:
        return None, NOTHING_TO_COMPARE
    if comparison_rate > 0:
        return rate / comparison_rate, None
    return None, BOTH_RATES_ZERO if rate == 0 else ZERO_COMPARISON_RATE


def _chi_square(table: pd.DataFrame) -> tuple[float | None, float | None, int | None]:
    """Pearson's chi-square over a groups x [positive, negative] table; None when it is undefined."""
    if len(table) < 2 or (table.sum(axis=0) == 0).any():
        return None, None, None
    statistic, p_value, dof, _ = chi2_contingency(table.to_numpy(), correction=False)
    return float(statistic), float(p_value), int(dof)


def _comparison(
    group: str, reference: str | None, eligible: list[str], sizes: pd.Series, positives: pd.Series
) -> tuple[str | None, float | None]:
    """What a group's ratio compares it with: the reference group, or for the reference the other judged groups."""
    if reference is None:
        return None, None
    if group != reference:
        return reference, float(positives[reference] / sizes[reference])
    others = [g for g in eligible if g != reference]
    if not others:
        return None, None
    return OTHER_GROUPS, float(positives[others].sum() / sizes[others].sum())


def _status(
    *,
    judged: bool,
    is_reference: bool,
    rate: float,
    comparison_rate: float | None,
    di: float | None,
    confirmed: bool,
    upper: float,
) -> str:
    if not judged:
        return INSUFFICIENT_DATA
    over = (di is not None and di > upper) or (di is None and comparison_rate == 0 and rate > 0)
    if over:
        return BIAS if confirmed else NOT_SIGNIFICANT
    if is_reference:
        return REFERENCE
    if di is not None and di < DI_LOWER:
        return BELOW_REFERENCE if confirmed else NOT_SIGNIFICANT
    return FAIR


def group_fairness(
    attribute: str,
    groups: pd.Series,
    positive: np.ndarray,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    reference_group: str | None = None,
    correct: np.ndarray | None = None,
    adjusted_p_value: float | None = None,
    upper: float = DI_UPPER,
) -> AttributeFairness:
    """Rates, disparate impact and the chi-square test of one attribute.

    `positive` is the adverse outcome per row (flagged / predicted high risk);
    `correct` (classifiers) marks rows whose prediction matched the truth;
    `adjusted_p_value`, when the test is one of a family (see `holm_adjusted`),
    decides whether an out-of-band DI is confirmed, instead of the test's own p-value;
    `upper`: a ratio above it is being flagged more (DI_UPPER; FPR_RATIO_UPPER for false-positive rates).
    """
    labels = group_labels(groups.reset_index(drop=True))
    positive = np.asarray(positive, dtype=bool)
    if len(labels) != len(positive):
        raise ValueError(f"{attribute}: {len(labels)} group values but {len(positive)} outcomes")
    frame = pd.DataFrame({"group": labels, "positive": positive})
    if correct is not None:
        frame["correct"] = np.asarray(correct, dtype=bool)
    by_group = frame.groupby("group", sort=True)
    sizes = by_group.size()
    positives = by_group["positive"].sum().astype(int)
    rates = positives / sizes
    eligible = sizes[sizes >= min_group_size].index.tolist()

    if reference_group is not None and reference_group not in sizes.index:
        raise ValueError(f"{attribute}: reference group {reference_group!r} does not occur in the data")
    if reference_group is None and eligible:
        reference_group = str(sizes[eligible].idxmax())  # the largest (ties: the first by name)

    table = pd.DataFrame({"positive": positives[eligible], "negative": sizes[eligible] - positives[eligible]})
    chi_square, p_value, dof = _chi_square(table)
    confirming = p_value if adjusted_p_value is None else adjusted_p_value
    confirmed = confirming is not None and confirming < CHI_SQUARE_ALPHA
    results = []
    for group in sizes.index:
        compared_with, comparison_rate = _comparison(group, reference_group, eligible, sizes, positives)
        rate = float(rates[group])
        di, note = disparate_impact(rate, comparison_rate)
        status = _status(
            judged=group in eligible,
            is_reference=group == reference_group,
            rate=rate,
            comparison_rate=comparison_rate,
            di=di,
            confirmed=confirmed,
            upper=upper,
        )
        accuracy = float(by_group["correct"].mean()[group]) if correct is not None else None
        results.append(
            GroupFairness(
                attribute,
                str(group),
                int(sizes[group]),
                int(positives[group]),
                rate,
                compared_with,
                comparison_rate,
                di,
                status,
                note,
                accuracy,
            )
        )

    judged = [g.disparate_impact for g in results if g.status in JUDGED and g.disparate_impact is not None]
    if len(eligible) < 2:
        status = INSUFFICIENT_DATA
    elif any(g.status == BIAS for g in results):
        status = BIAS
    elif p_value is not None and p_value < CHI_SQUARE_ALPHA:
        status = WARNING
    else:
        status = FAIR
    return AttributeFairness(
        attribute=attribute,
        reference_group=reference_group,
        groups=tuple(results),
        chi_square=chi_square,
        p_value=p_value,
        confirming_p_value=confirming,
        degrees_of_freedom=dof,
        min_disparate_impact=min(judged) if judged else None,
        max_disparate_impact=max(judged) if judged else None,
        status=status,
    )


def _summary_frame(results: Mapping[str, AttributeFairness]) -> pd.DataFrame:
    rows = []
    for attribute in results.values():
        for group in attribute.groups:
            rows.append(
                {
                    **asdict(group),
                    "reference_group": attribute.reference_group,
                    "attribute_status": attribute.status,
                    "chi_square": attribute.chi_square,
                    "p_value": attribute.p_value,
                    "confirming_p_value": attribute.confirming_p_value,
                }
            )
    return pd.DataFrame(rows)


def table_rows(results: Mapping[str, AttributeFairness]) -> list[dict]:
    """One row per attribute and group in the field names of the fairness table (governance.fairness_monitoring)."""
    return [
        {
            "attribute": result.attribute,
            "protected_group": group.group,
            "reference_group": result.reference_group,
            "compared_with": group.compared_with,
            "group_size": group.size,
            "flagged": group.positives,
            "flag_rate": group.rate,
            "comparison_rate": group.comparison_rate,
            "disparate_impact": group.disparate_impact,
            "disparate_impact_note": group.note,
            "chi_square_p_value": result.p_value,
            "confirming_p_value": result.confirming_p_value,
            "status": group.status,
            "attribute_status": result.status,
        }
        for result in results.values()
        for group in result.groups
    ]


class FairnessAnalyzer:
    """Fairness of fraud flags across protected attributes: the flags given (`flagged`, e.g. a scored table's
    `is_flagged_p95`), or score >= threshold when only scores are given."""

    def __init__(
        self,
        data: pd.DataFrame,
        fraud_scores: Sequence[float] | np.ndarray | pd.Series | None = None,
        protected_attributes: Sequence[str] = PROTECTED_ATTRIBUTES,
        threshold_percentile: float = DEFAULT_THRESHOLD_PERCENTILE,
        reference_groups: Mapping[str, str] | None = None,
        min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
        score_threshold: float | None = None,
        adjusted_p_values: Mapping[str, float | None] | None = None,
        *,
        flagged: Sequence[bool] | np.ndarray | pd.Series | None = None,
        upper: float = DI_UPPER,
    ):
        if (fraud_scores is None) == (flagged is None):
            raise ValueError("give either fraud_scores (flags = score >= threshold) or flagged, not both")
        outcome = "flags" if flagged is not None else "fraud scores"
        values = np.asarray(flagged if flagged is not None else fraud_scores, dtype=float)
        if len(values) != len(data):
            raise ValueError(f"{len(values)} {outcome} for {len(data)} rows: they must align row by row")
        if len(values) == 0:
            raise ValueError("no rows to analyse")
        if np.isnan(values).any():
            raise ValueError(f"{outcome} contain missing values: score every row before the fairness analysis")
        missing = [a for a in protected_attributes if a not in data.columns]
        if missing:
            raise ValueError(f"protected attributes not in the data: {missing}; columns: {list(data.columns)}")
        if not 0 < threshold_percentile < 100:
            raise ValueError(f"threshold_percentile must lie in (0, 100), got {threshold_percentile}")
        self.data = data.reset_index(drop=True)
        self.protected_attributes = tuple(protected_attributes)
        self.threshold_percentile = threshold_percentile
        self.reference_groups = dict(reference_groups or {})
        self.min_group_size = min_group_size
        if flagged is not None:
            self.score_threshold: float | None = None
            self.flagged = values.astype(bool)
        else:
            self.score_threshold = (
                float(np.percentile(values, threshold_percentile)) if score_threshold is None else score_threshold
            )
            self.flagged = values >= self.score_threshold
        self.adjusted_p_values = dict(adjusted_p_values or {})
        self.upper = upper
        self._results: dict[str, AttributeFairness] | None = None

    def analyze_attribute(self, attribute: str) -> AttributeFairness:
        return group_fairness(
            attribute,
            self.data[attribute],
            self.flagged,
            min_group_size=self.min_group_size,
            reference_group=self.reference_groups.get(attribute),
            adjusted_p_value=self.adjusted_p_values.get(attribute),
            upper=self.upper,
        )

    def analyze_all_attributes(self) -> dict[str, AttributeFairness]:
        if self._results is None:
            self._results = {a: self.analyze_attribute(a) for a in self.protected_attributes}
        return self._results

    @property
    def biased_attributes(self) -> list[str]:
        return [a for a, r in self.analyze_all_attributes().items() if r.status == BIAS]

    @property
    def fail_on_bias(self) -> bool:
        """True when bias shows in more than MAX_BIASED_ATTRIBUTES attributes: the run must fail."""
        return len(self.biased_attributes) > MAX_BIASED_ATTRIBUTES

    def get_bias_summary(self) -> pd.DataFrame:
        """One row per attribute and group: size, flags, flag rate, comparison, DI, status, test result."""
        return _summary_frame(self.analyze_all_attributes())


def holm_adjusted(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values of a family of tests (None stays None: no test).

    Adjusted p < alpha keeps the chance of any false alarm in the family below alpha, whereas
    14 days x 3 attributes tested at 0.05 each would raise one on most clean runs.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def analyze_family(
    parts: Mapping[object, pd.DataFrame], flag_column: str, **analyzer_options
) -> dict[object, FairnessAnalyzer]:
    """One analyzer per part (e.g. per day) of the flags in `flag_column`, whose DI gates are confirmed by
    Holm-adjusted p-values over every attribute test of every part: the run's days and attributes are one family
    of tests."""
    first = {key: FairnessAnalyzer(part, flagged=part[flag_column], **analyzer_options) for key, part in parts.items()}
    tests = [
        (key, attribute, result.p_value)
        for key, analyzer in first.items()
        for attribute, result in analyzer.analyze_all_attributes().items()
    ]
    adjusted = holm_adjusted([p for _, _, p in tests])
    per_part: dict[object, dict[str, float | None]] = {key: {} for key in parts}
    for (key, attribute, _), p in zip(tests, adjusted, strict=True):
        per_part[key][attribute] = p
    return {
        key: FairnessAnalyzer(part, flagged=part[flag_column], adjusted_p_values=per_part[key], **analyzer_options)
        for key, part in parts.items()
    }


def classifier_fairness(
    data: pd.DataFrame,
    y_true: Sequence[bool] | np.ndarray,
    y_pred: Sequence[bool] | np.ndarray,
    protected_attributes: Sequence[str] = PROTECTED_ATTRIBUTES,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    reference_groups: Mapping[str, str] | None = None,
) -> dict[str, AttributeFairness]:
    """Per-group accuracy and selection rate (share predicted positive, e.g. high risk) of a classifier.

    Disparate impact and the chi-square test are on the selection rate, as for fraud flags.
    """
    truth, predicted = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    if not len(truth) == len(predicted) == len(data):
        raise ValueError(f"{len(data)} rows, {len(truth)} labels and {len(predicted)} predictions must align")
    data = data.reset_index(drop=True)
    references = reference_groups or {}
    return {
        a: group_fairness(
            a,
            data[a],
            predicted,
            min_group_size=min_group_size,
            reference_group=references.get(a),
            correct=truth == predicted,
        )
        for a in protected_attributes
    }


def bias_summary(results: Mapping[str, AttributeFairness]) -> pd.DataFrame:
    """The bias summary table of any set of attribute results (fraud flags or a classifier)."""
    return _summary_frame(results)


def false_positive_rate_fairness(
    data: pd.DataFrame,
    flagged: Sequence[bool] | np.ndarray | pd.Series,
    is_fraud: Sequence[bool] | np.ndarray | pd.Series,
    **analyzer_options,
) -> dict[str, AttributeFairness]:
    """False-positive-rate parity: the analysis of the flags of the legitimate rows only (`is_fraud` false), whose
    flag rate is the group's false-positive rate and whose ratio is the FPR ratio to the reference group.
    The attributes' tests are one family (Holm-adjusted)."""
    flags, fraud = np.asarray(flagged, dtype=bool), np.asarray(is_fraud, dtype=bool)
    if not len(flags) == len(fraud) == len(data):
        raise ValueError(f"{len(data)} rows, {len(flags)} flags and {len(fraud)} labels must align")
    legitimate = data.reset_index(drop=True)[~fraud].assign(flagged=flags[~fraud])
    if legitimate.empty:
        raise ValueError("no legitimate rows: a false-positive rate needs labelled legitimate claims")
    return analyze_family({"legitimate": legitimate}, "flagged", **analyzer_options)[
        "legitimate"
    ].analyze_all_attributes()
