"""Population stability index (PSI) per feature and the composite drift score.

PSI of a feature between a reference window and a current window:

    PSI = sum over bins of (c_i - r_i) * ln(c_i / r_i)

where r_i, c_i are the shares of the reference and current rows in bin i, a
share of 0 replaced by EPSILON (no renormalisation) so empty bins stay finite.

Bins:
* numeric: the reference's quantiles at 1/n ... (n-1)/n are the inner edges
  (duplicates removed, so a feature with few distinct values gets fewer bins);
  the outer bins are open-ended, so current values beyond the reference range
  land in the first or last bin; bins are right-closed, (e_{i-1}, e_i];
* categorical: one bin per reference category holding at least MIN_CATEGORY_SHARE
  of the reference rows, one bin pooling the rarer reference categories (OTHER),
  and one for categories the reference never saw (UNSEEN). Pooling keeps a
  high-cardinality code list (procedures, diagnoses) from reading sampling noise
  in dozens of thin bins as drift;
* both: one bin for missing values (MISSING), empty when nothing is missing.

Composite drift score (seed 000: statistical, demographic and performance drift):

    composite = W_STATISTICAL * min(1, mean PSI of the monitored features)
              + W_DEMOGRAPHIC * min(1, max PSI of the protected attributes' group shares)
              + W_PERFORMANCE * min(1, relative degradation of the primary metric vs reference)

relative degradation = max(0, (reference - current) / |reference|) for a metric
where higher is better (ROC-AUC, R^2, accuracy), max(0, (current - reference) /
|reference|) where lower is better (MAE). A composite above COMPOSITE_ERROR is an
ERROR and triggers retraining. Every threshold and weight is a constant below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# --- governance thresholds (seeds 002/003/000) ---------------------------------------------
PSI_WARN = 0.1
PSI_ERROR = 0.2
DEFAULT_BINS = 10
EPSILON = 1e-4
COMPOSITE_ERROR = 0.3
# A window smaller than this is reported but not gated: sampling noise alone adds about (bins - 1) / rows to PSI,
# i.e. the WARN threshold for ten bins at ~100 rows.
MIN_GATED_ROWS = 200
# reference categories rarer than this share one OTHER bin (the usual "at least 5 % per bin" rule)
MIN_CATEGORY_SHARE = 0.05
W_STATISTICAL = 0.4
W_DEMOGRAPHIC = 0.3
W_PERFORMANCE = 0.3

OK = "OK"
WARN = "WARN"
ERROR = "ERROR"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

UNSEEN = "<unseen>"
OTHER = "<other>"
MISSING = "<missing>"


def psi_status(value: float) -> str:
    if value >= PSI_ERROR:
        return ERROR
    if value >= PSI_WARN:
        return WARN
    return OK


@dataclass(frozen=True)
class FeaturePSI:
    feature: str
    kind: str  # "numeric" or "categorical"
    bins: tuple[str, ...]  # a label per bin, e.g. "(-inf, 3.5]", "F", "<unseen>", "<missing>"
    edges: tuple[float, ...] | None  # inner edges of numeric bins
    categories: tuple[str, ...] | None  # reference categories of categorical bins
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]
    reference_size: int
    current_size: int
    psi: float
    status: str


def population_stability_index(reference_counts: Sequence[int], current_counts: Sequence[int]) -> float:
    """PSI of two count vectors over the same bins; empty shares count as EPSILON."""
    reference = np.asarray(reference_counts, dtype=float)
    current = np.asarray(current_counts, dtype=float)
    if reference.sum() == 0 or current.sum() == 0:
        raise ValueError("PSI needs at least one reference row and one current row")
    r = np.maximum(reference / reference.sum(), EPSILON)
    c = np.maximum(current / current.sum(), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the right-closed bins between open-ended outer bounds and the inner edges, plus MISSING."""
    bounds = [-np.inf, *edges, np.inf]
    return [f"({lo:g}, {hi:g}]" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)] + [MISSING]


def quantile_levels(bins: int = DEFAULT_BINS) -> list[float]:
    """The reference quantiles whose (deduplicated) values are the inner edges of the numeric bins."""
    return np.linspace(0, 1, bins + 1)[1:-1].tolist()


def _numeric_bins(reference: pd.Series, current: pd.Series, bins: int) -> tuple[np.ndarray, list[str], list, list]:
    ref_values = reference.dropna().to_numpy(dtype=float)
    if len(ref_values) == 0:
        raise ValueError(f"{reference.name}: the reference window has no values")
    quantiles = np.quantile(ref_values, quantile_levels(bins))
    edges = np.unique(quantiles)
    labels = numeric_bin_labels(edges.tolist())

    def counts(values: pd.Series) -> list[int]:
        present = values.dropna().to_numpy(dtype=float)
        binned = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
        return [*binned.tolist(), int(values.isna().sum())]

    return edges, labels, counts(reference), counts(current)


def _categorical_bins(reference: pd.Series, current: pd.Series) -> tuple[list[str], list[str], list, list]:
    def value_counts(values: pd.Series) -> dict[str | int, int]:
        counts: dict[str | int, int] = {str(k): int(n) for k, n in values.dropna().astype(str).value_counts().items()}
        return {**counts, MISSING: int(values.isna().sum())}

    return _category_bin_counts(value_counts(reference), value_counts(current))


def _category_bin_counts(
    reference_counts: Mapping[str | int, int], current_counts: Mapping[str | int, int]
) -> tuple[list[str], list[str], list[int], list[int]]:
    """Bins of a categorical feature from per-category counts: (kept categories, labels, reference, current)."""
    reference = {str(k): int(n) for k, n in reference_counts.items() if k != MISSING and n}
    total = sum(reference.values()) + int(reference_counts.get(MISSING, 0))
    kept = sorted(c for c, n in reference.items() if n >= MIN_CATEGORY_SHARE * total)
    pooled = set(reference) - set(kept)

    def bin_counts(counts: Mapping[str | int, int]) -> list[int]:
        present = {str(k): int(n) for k, n in counts.items() if k != MISSING}
        other = sum(n for c, n in present.items() if c in pooled)
        unseen = sum(n for c, n in present.items() if c not in reference)
        return [*(present.get(c, 0) for c in kept), other, unseen, int(counts.get(MISSING, 0))]

    return kept, [*kept, OTHER, UNSEEN, MISSING], bin_counts(reference_counts), bin_counts(current_counts)


def feature_psi(
    reference: pd.Series,
    current: pd.Series,
    *,
    feature: str | None = None,
    bins: int = DEFAULT_BINS,
    kind: str | None = None,
) -> FeaturePSI:
    """PSI of one feature; numeric unless the values are not numbers (or kind="categorical")."""
    name = feature or str(reference.name)
    if bins < 2:
        raise ValueError(f"{name}: at least 2 bins are needed, got {bins}")
    if kind is None:
        kind = (
            "numeric"
            if pd.api.types.is_numeric_dtype(reference) and not pd.api.types.is_bool_dtype(reference)
            else "categorical"
        )
    if kind == "numeric":
        edges, labels, ref_counts, cur_counts = _numeric_bins(reference, current, bins)
        edge_values: tuple[float, ...] | None = tuple(float(e) for e in edges)
        categories = None
    elif kind == "categorical":
        category_list, labels, ref_counts, cur_counts = _categorical_bins(reference, current)
        edge_values, categories = None, tuple(category_list)
    else:
        raise ValueError(f"{name}: kind must be 'numeric' or 'categorical', got {kind!r}")
    value = population_stability_index(ref_counts, cur_counts)
    return FeaturePSI(
        feature=name,
        kind=kind,
        bins=tuple(labels),
        edges=edge_values,
        categories=categories,
        reference_counts=tuple(ref_counts),
        current_counts=tuple(cur_counts),
        reference_size=len(reference),
        current_size=len(current),
        psi=value,
        status=psi_status(value),
    )


def feature_psi_from_counts(
    feature: str,
    kind: str,
    reference_counts: Mapping[str | int, int],
    current_counts: Mapping[str | int, int],
    *,
    edges: Sequence[float] | None = None,
) -> FeaturePSI:
    """PSI of one feature from counts aggregated elsewhere (e.g. by Spark), with the same bins as `feature_psi`.

    Numeric: counts keyed by bin index (0 .. len(edges), the number of inner edges below the value) or MISSING;
    `edges` are the reference's deduplicated quantiles. Categorical: counts keyed by category or MISSING; the
    reference's categories are the bins, every other current category counts as UNSEEN.
    """
    if kind == "numeric":
        if edges is None:
            raise ValueError(f"{feature}: numeric counts need the reference's bin edges")
        keys: list[str | int] = [*range(len(edges) + 1), MISSING]
        labels = numeric_bin_labels(edges)
        ref = [int(reference_counts.get(k, 0)) for k in keys]
        cur = [int(current_counts.get(k, 0)) for k in keys]
        edge_values: tuple[float, ...] | None = tuple(float(e) for e in edges)
        categories = None
    elif kind == "categorical":
        category_list, labels, ref, cur = _category_bin_counts(reference_counts, current_counts)
        edge_values, categories = None, tuple(category_list)
    else:
        raise ValueError(f"{feature}: kind must be 'numeric' or 'categorical', got {kind!r}")
    value = population_stability_index(ref, cur)
    return FeaturePSI(
        feature=feature,
        kind=kind,
        bins=tuple(labels),
        edges=edge_values,
        categories=categories,
        reference_counts=tuple(ref),
        current_counts=tuple(cur),
        reference_size=sum(ref),
        current_size=sum(cur),
        psi=value,
        status=psi_status(value),
    )


def psi_report(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], bins: int = DEFAULT_BINS
) -> dict[str, FeaturePSI]:
    """PSI of every listed feature of a current window against the reference window."""
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise ValueError(f"features missing from the reference or current window: {missing}")
    return {f: feature_psi(reference[f], current[f], feature=f, bins=bins) for f in features}


def relative_degradation(reference: float, current: float, higher_is_better: bool = True) -> float:
    """How much worse the current metric is than the reference, as a share of the reference (0 when not worse)."""
    if reference == 0:
        raise ValueError("the reference metric is 0: relative degradation is undefined")
    change = (reference - current) if higher_is_better else (current - reference)
    return max(0.0, change / abs(reference))


@dataclass(frozen=True)
class CompositeDrift:
    statistical: float  # mean PSI of the monitored features
    demographic: float  # max PSI of the protected attributes
    performance: float  # relative degradation of the primary metric
    score: float
    status: str
    weights: Mapping[str, float]


def composite_drift(
    feature_psis: Sequence[float], demographic_psis: Sequence[float], performance_degradation: float
) -> CompositeDrift:
    """The weighted composite of statistical, demographic and performance drift (see the module docstring)."""
    if not feature_psis:
        raise ValueError("the composite drift score needs at least one feature PSI")
    statistical = float(np.mean(feature_psis))
    demographic = float(max(demographic_psis)) if demographic_psis else 0.0
    performance = float(performance_degradation)
    if performance < 0:
        raise ValueError(f"performance degradation cannot be negative, got {performance}")
    score = (
        W_STATISTICAL * min(1.0, statistical)
        + W_DEMOGRAPHIC * min(1.0, demographic)
        + W_PERFORMANCE * min(1.0, performance)
    )
    return CompositeDrift(
        statistical=statistical,
        demographic=demographic,
        performance=performance,
        score=score,
        status=ERROR if score > COMPOSITE_ERROR else OK,
        weights={"statistical": W_STATISTICAL, "demographic": W_DEMOGRAPHIC, "performance": W_PERFORMANCE},
    )
