"""A special-investigations rule set: the checks an SIU analyst writes for the known billing schemes, measured
beside the autoencoders as the baseline they have to be worth more than.

Each rule reads gold.claim_features columns only (never a label) and encodes a published red flag:

* `exact_repeat`: the same member, provider, procedure and service date was already billed (duplicate billing);
* `inexperienced_provider`: the rendering provider has under two years of practice on file (phantom or
  newly created billing entities);
* `many_lines_one_visit`: four or more claim lines for one member, provider and service date (a panel or
  procedure billed as separate components: unbundling);
* `top_em_minor_diagnosis`: the highest office or emergency E/M level billed for a self-limited diagnosis
  (upcoding).

A claim's rule score is the number of rules it trips; it is flagged when it trips any. Pure Python.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The highest level of office (99215) and emergency department (99285) evaluation and management.
TOP_EM_LEVELS = frozenset({"99215", "99285"})
# Self-limited, low-complexity diagnoses: routine exams (adult, child), acute upper respiratory infection,
# pharyngitis, otitis media, headache.
MINOR_DIAGNOSES = frozenset({"Z00.00", "Z00.129", "J06.9", "J02.9", "H66.90", "R51.9"})
MIN_PROVIDER_EXPERIENCE_YEARS = 2
# A visit usually bills one or two lines; a lab panel split into its components bills many.
MANY_LINES_PER_VISIT = 4

RULES = ("exact_repeat", "inexperienced_provider", "many_lines_one_visit", "top_em_minor_diagnosis")
RULE_COLUMNS = (
    "identical_claims_before",
    "provider_experience_years",
    "lines_same_visit",
    "procedure_code",
    "diagnosis_code",
)


def rule_hits(features: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per rule: whether the claim trips it (a missing value trips nothing)."""
    missing = [c for c in RULE_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"the rules need the claim feature columns {missing}")

    def number(column: str) -> pd.Series:
        return pd.to_numeric(features[column], errors="coerce")

    hits = {
        "exact_repeat": number("identical_claims_before") > 0,
        "inexperienced_provider": number("provider_experience_years") < MIN_PROVIDER_EXPERIENCE_YEARS,
        "many_lines_one_visit": number("lines_same_visit") >= MANY_LINES_PER_VISIT,
        "top_em_minor_diagnosis": features["procedure_code"].isin(TOP_EM_LEVELS)
        & features["diagnosis_code"].isin(MINOR_DIAGNOSES),
    }
    return pd.DataFrame({name: hits[name].fillna(False).astype(bool) for name in RULES}, index=features.index)


def rule_scores(features: pd.DataFrame) -> np.ndarray:
    """Rules tripped per claim (0..4): the baseline's score; a claim is flagged when it is above 0."""
    return rule_hits(features).sum(axis=1).to_numpy(dtype=float)
