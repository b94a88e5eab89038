"""Feature definitions shared by the gold tables, model training and scoring."""

from __future__ import annotations

# Claim-level features of the fraud autoencoder.
# The member-history ones look back over a fixed window (90 received days, the claim's day included) and are
# rates or ratios, so they mean the same on day 1 and day 365; `history_days` says how much of the window the
# lakehouse held (fewer days only in its first 90 days).
CLAIM_NUMERIC_FEATURES = (
    "claim_amount",
    "patient_age",
    "provider_experience_years",
    "days_since_last_claim",  # since the member's latest earlier claim in the window (null: none)
    "claim_rate_30d",  # the member's earlier claims received in the last 30 days, per 30 days of received history
    "claim_rate_90d",  # the same over the 90-day window
    "amount_to_member_mean",  # amount / the member's mean amount in the window (null: no earlier claim)
    "history_days",  # days of the 90-day window that hold received claims
    "claim_duration_days",
)
# Member-history features: their distribution settles only once the lakehouse holds a full feature window.
CLAIM_HISTORY_FEATURES = (
    "days_since_last_claim",
    "claim_rate_30d",
    "claim_rate_90d",
    "amount_to_member_mean",
    "history_days",
)
# Claim-context features: how the claim sits among the claims received up to its day, the way a
# special-investigations analyst looks at it (resubmissions, lines per visit, price and coding norms).
CLAIM_CONTEXT_FEATURES = (
    "identical_claims_before",  # same member, provider, procedure and service date, received earlier
    "lines_same_visit",  # claim lines of the same member, provider and service date (this one included)
    "amount_to_procedure_typical",  # amount / geometric-mean amount of the procedure in the window
    "procedure_share_for_diagnosis",  # share of the diagnosis's claims in the window billed with this procedure
)
CLAIM_CATEGORICAL_FEATURES = (
    "claim_type",
    "provider_specialty",
    "diagnosis_code",
    "procedure_code",
    "patient_gender",
    "geographic_region",
)

# In gold for analysts and monitoring, not for the autoencoder: nested windows hold the same claims until the history
# is as long as the shorter one, so models trained in the first 30 days learn the 90-day rate as exactly 3 x the
# 30-day rate, and every claim misfits on the days the two part ways (measured: 21-73 % of a new day flagged).
NOT_MODEL_FEATURES = ("claim_rate_90d",)
# What the fraud autoencoder reconstructs (gold.claim_features columns).
FRAUD_NUMERIC_FEATURES = (
    *(f for f in CLAIM_NUMERIC_FEATURES if f not in NOT_MODEL_FEATURES),
    *CLAIM_CONTEXT_FEATURES,
)
FRAUD_CATEGORICAL_FEATURES = CLAIM_CATEGORICAL_FEATURES
# The patient's demographics among them are context only: inputs that tell the autoencoder what fits the patient
# (a pediatric well visit fits a child), never reconstructed. Reconstructing them would score a claim as unusual for
# its patient being in a small group (gender U, a thinly populated region, an unusual age), flagging members of
# those groups more often on clean data: demographic bias the fairness gate rightly rejects.
# `history_days` is context as well: it tells the models how much history the rates rest on, and a claim is not
# unusual for arriving while the lakehouse is young.
FRAUD_CONTEXT_FEATURES = ("patient_age", "patient_gender", "geographic_region", "history_days")

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

# Utilisation columns of gold.member_features over the look-back window: zero for a member without activity.
MEMBER_UTILISATION_COUNTS = (
    "num_claims",
    "num_er_visits",
    "num_inpatient_stays",
    "num_outpatient_visits",
    "num_distinct_providers",
    "num_rx_fills",
    "num_immunizations",
)
MEMBER_UTILISATION_AMOUNTS = ("total_claim_amount", "total_paid_amount", "total_rx_amount")
