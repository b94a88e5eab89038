"""Feature definitions shared by the gold tables, model training and scoring."""

from __future__ import annotations

# Claim-level features of the fraud autoencoder.
CLAIM_NUMERIC_FEATURES = (
    "claim_amount",
    "patient_age",
    "provider_experience_years",
    "days_since_last_claim",
    "num_previous_claims",
    "average_claim_amount",
    "claim_duration_days",
)
CLAIM_CATEGORICAL_FEATURES = (
    "claim_type",
    "provider_specialty",
    "diagnosis_code",
    "procedure_code",
    "patient_gender",
    "geographic_region",
)

# Protected attributes for fairness analysis (columns of gold.claim_features).
PROTECTED_ATTRIBUTES = ("patient_gender", "geographic_region", "patient_age_group")

# condition -> (ICD-10 prefix, maintenance drug class or None)
CHRONIC_CONDITIONS: dict[str, tuple[str, str | None]] = {
    "diabetes": ("E11", "antidiabetic"),
    "hypertension": ("I10", "antihypertensive"),
    "asthma": ("J45", "bronchodilator"),
    "copd": ("J44", None),
    "chf": ("I50", None),
    "ckd": ("N18", None),
    "depression": ("F32", "antidepressant"),
}
