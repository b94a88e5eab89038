"""Fairness of fraud flags and risk classifications across protected groups.

A claim is *flagged* when its fraud score reaches the threshold (the
`threshold_percentile` of the scores, or an explicit score threshold). Being
flagged is the adverse outcome, so per protected attribute:

* flag rate of every group;
* disparate impact (DI) of a group = its flag rate / the reference group's flag
  rate. The reference is the most favoured group (the lowest flag rate among
  groups large enough to judge) unless one is configured. DI outside
  [DI_LOWER, DI_UPPER] is bias when the chi-square test below confirms the
  difference (p < CHI_SQUARE_ALPHA), as the four-fifths rule is applied with a
  significance test on small samples; an unconfirmed one is reported as
  `not_significant` (a handful of flags per group swings a ratio far out of band).
  When many days and attributes are judged at once (`analyze_family`), the
  confirming p-value is Holm-Bonferroni adjusted over all of them, so a clean
  run of 14 days x 3 attributes does not raise a chance alarm;
* Pearson's chi-square test of independence of flag and group (no continuity
  correction) over the groups large enough to judge; p < CHI_SQUARE_ALPHA is a
  warning;
* groups smaller than `min_group_size` are reported with status
  `insufficient_data` and take no part in the reference choice, the DI gate or
  the test.

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
CHI_SQUARE_ALPHA = 0.05
DEFAULT_THRESHOLD_PERCENTILE = 95.0
DEFAULT_MIN_GROUP_SIZE = 30
# bias in more than this many attributes fails the run (`fail_on_bias`)
MAX_BIASED_ATTRIBUTES = 1

MISSING_GROUP = "<missing>"

# group statuses
FAIR = "fair"
BIAS = "bias"
NOT_SIGNIFICANT = "not_significant"  # DI out of band, but the chi-square test does not confirm it
REFERENCE = "reference"
INSUFFICIENT_DATA = "insufficient_data"
# attribute statuses (plus FAIR, BIAS, INSUFFICIENT_DATA)
WARNING = "warning"


@dataclass(frozen=True)
class GroupFairness:
    attribute: str
    group: str
    size: int
    positives: int  # flagged claims, or high-risk predictions for a classifier
    rate: float  # flag rate / selection rate
    disparate_impact: float | None  # rate / reference rate; inf when the reference rate is 0
    status: str
    accuracy: float | None = None  # classifiers only


@dataclass(frozen=True)
class AttributeFairness:
    attribute: str
    reference_group: str | None
    groups: tuple[GroupFairness, ...]
    chi_square: float | None
    p_value: float | None
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


def _group_labels(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), MISSING_GROUP).astype(str)


def _disparate_impact(rate: float, reference_rate: float) -> float:
    if reference_rate > 0:
        return rate / reference_rate
    return 1.0 if rate == 0 else float("inf")


def _chi_square(table: pd.DataFrame) -> tuple[float | None, float | None, int | None]:
    """Pearson's chi-square over a groups x [positive, negative] table; None when it is undefined."""
    if len(table) < 2 or (table.sum(axis=0) == 0).any():
        return None, None, None
    statistic, p_value, dof, _ = chi2_contingency(table.to_numpy(), correction=False)
    return float(statistic), float(p_value), int(dof)


def group_fairness(
    attribute: str,
    groups: pd.Series,
    positive: np.ndarray,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    reference_group: str | None = None,
    correct: np.ndarray | None = None,
    adjusted_p_value: float | None = None,
) -> AttributeFairness:
    """Rates, disparate impact and the chi-square test of one attribute.

    `positive` is the adverse outcome per row (flagged / predicted high risk);
    `correct` (classifiers) marks rows whose prediction matched the truth;
    `adjusted_p_value`, when the test is one of a family (see `holm_adjusted`),
    decides whether an out-of-band DI is confirmed, instead of the test's own p-value.
    """
    labels = _group_labels(groups.reset_index(drop=True))
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
        reference_group = str(rates[eligible].idxmin())  # most favoured: the lowest adverse rate

    reference_rate = float(rates[reference_group]) if reference_group is not None else None
    table = pd.DataFrame({"positive": positives[eligible], "negative": sizes[eligible] - positives[eligible]})
    chi_square, p_value, dof = _chi_square(table)
    confirming = p_value if adjusted_p_value is None else adjusted_p_value
    significant = confirming is not None and confirming < CHI_SQUARE_ALPHA
    results = []
    for group in sizes.index:
        size = int(sizes[group])
        di = None if reference_rate is None else _disparate_impact(float(rates[group]), reference_rate)
        if size < min_group_size:
            status = INSUFFICIENT_DATA
        elif group == reference_group:
            status = REFERENCE
        elif di is not None and not DI_LOWER <= di <= DI_UPPER:
            status = BIAS if significant else NOT_SIGNIFICANT
        else:
            status = FAIR
        accuracy = float(by_group["correct"].mean()[group]) if correct is not None else None
        results.append(
            GroupFairness(attribute, str(group), size, int(positives[group]), float(rates[group]), di, status, accuracy)
        )

    judged = [
        g.disparate_impact
        for g in results
        if g.status in (FAIR, BIAS, REFERENCE, NOT_SIGNIFICANT) and g.disparate_impact is not None
    ]
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
                }
            )
    return pd.DataFrame(rows)


class FairnessAnalyzer:
    """Fairness of fraud flags (score >= threshold) across protected attributes."""

    def __init__(
        self,
        data: pd.DataFrame,
        fraud_scores: Sequence[float] | np.ndarray | pd.Series,
        protected_attributes: Sequence[str] = PROTECTED_ATTRIBUTES,
        threshold_percentile: float = DEFAULT_THRESHOLD_PERCENTILE,
        reference_groups: Mapping[str, str] | None = None,
        min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
        score_threshold: float | None = None,
        adjusted_p_values: Mapping[str, float | None] | None = None,
    ):
        scores = np.asarray(fraud_scores, dtype=float)
        if len(scores) != len(data):
            raise ValueError(f"{len(scores)} fraud scores for {len(data)} rows: they must align row by row")
        if len(scores) == 0:
            raise ValueError("no rows to analyse")
        if np.isnan(scores).any():
            raise ValueError("fraud scores contain NaN: score every row before the fairness analysis")
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
        self.score_threshold = (
            float(np.percentile(scores, threshold_percentile)) if score_threshold is None else score_threshold
        )
        self.flagged = scores >= self.score_threshold
        self.adjusted_p_values = dict(adjusted_p_values or {})
        self._results: dict[str, AttributeFairness] | None = None

    def analyze_attribute(self, attribute: str) -> AttributeFairness:
        return group_fairness(
            attribute,
            self.data[attribute],
            self.flagged,
            min_group_size=self.min_group_size,
            reference_group=self.reference_groups.get(attribute),
            adjusted_p_value=self.adjusted_p_values.get(attribute),
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
        """One row per attribute and group: size, flags, flag rate, DI, status, test result."""
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
    parts: Mapping[object, pd.DataFrame], score_column: str, **analyzer_options
) -> dict[object, FairnessAnalyzer]:
    """One analyzer per part (e.g. per day) whose DI gates are confirmed by Holm-adjusted p-values over every
    attribute test of every part: the run's days and attributes are one family of tests."""
    first = {
        key: FairnessAnalyzer(part, part[score_column].to_numpy(), **analyzer_options) for key, part in parts.items()
    }
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
        key: FairnessAnalyzer(part, part[score_column].to_numpy(), adjusted_p_values=per_part[key], **analyzer_options)
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
