"""What every column of the lakehouse tables means, by column name.

Feed columns are described once in their contract (`sources.py`); this module adds
the ingest bookkeeping columns and the columns silver and gold derive. A column
name means the same thing in every table it appears in (in bronze it is still
the string as received). The catalog attaches these descriptions to each table's
column schema.
"""

from __future__ import annotations

from healthcare_assets.domain.features import CHRONIC_CONDITIONS
from healthcare_assets.domain.landing import LINE_NUMBER, RAW_RECORD, SOURCE_FILE
from healthcare_assets.domain.sources import SOURCES

INGEST_COLUMNS = {
    SOURCE_FILE: "Landing file the record came from",
    LINE_NUMBER: "Line of the record in its landing file (1 = first data line)",
    "_ingested_at": "When bronze ingested the record (UTC)",
    "ingest_date": "Day the feed file was received: the daily partition",
    RAW_RECORD: "The landing line exactly as received (may hold direct identifiers)",
    "reason": "Why the line was quarantined: rule and column, never a value (model_audit_log: why the version was "
    "promoted or refused)",
    "source": "Feed the line came from",
}

DERIVED_COLUMNS = {
    # silver
    "member_key": "Member pseudonym: HMAC-SHA256 of the member id under the pseudonymisation key",
    "birth_year": "Year of birth (ages over 89 folded together); replaces the date of birth",
    "address_key": "Address pseudonym: HMAC-SHA256 of street, city and ZIP; replaces the address",
    # silver.dim_members (SCD type 2)
    "version": "Version number of the member, 1 = first known",
    "enrollment_status": "active, or terminated after a TERM record",
    "effective_from": "First day this version is valid",
    "effective_to": "Last day this version is valid (null while current)",
    "is_current_record": "True for the member's current version",
    "attributes_hash": "SHA-256 of the tracked attributes: a change opens a new version",
    # gold daily aggregates (member_claims_daily, procedure_prices_daily, coding_pairs_daily, member_rx_daily):
    # one row per group and received day
    "claims": "Claims of the group received that day",
    "er_visits": "Emergency claims of the group received that day",
    "inpatient_stays": "Inpatient claims of the group received that day",
    "outpatient_visits": "Outpatient claims of the group received that day",
    "claim_amount_sum": "Sum of the billed amounts of the group's claims received that day",
    "paid_amount_sum": "Sum of the paid amounts of the group's claims received that day (null when none is known)",
    "log_amount_sum": "Sum of the natural logs of the billed amounts of the procedure's claims received that day",
    "fills": "Pharmacy fills of the member on the fill day, received that day",
    "rx_amount_sum": "Sum of the amounts of those fills",
    **{
        f"dx_{name}": f"1 when a claim of the group carries a {name.replace('_', ' ')} diagnosis, else 0"
        for name in CHRONIC_CONDITIONS
    },
    **{
        f"rx_{name}": f"1 when a fill of the group is a {drug_class} drug, else 0"
        for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
        if drug_class is not None
    },
    # gold.claim_features
    "claim_date": "Service start date of the claim",
    "patient_age": "Age in whole years on the service date, assuming a birthday on 1 July of the birth year",
    "patient_gender": "Member gender on the service date (protected attribute)",
    "patient_age_group": "Age band on the service date (protected attribute)",
    "days_since_last_claim": "Days since the service start of the member's latest earlier claim received in the "
    "last 90 days (null: none)",
    "claim_rate_30d": "Member's earlier claims received in the last 30 days, per 30 days of received history",
    "claim_rate_90d": "Member's earlier claims received in the last 90 days, per 90 days of received history",
    "amount_to_member_mean": "Billed amount / the mean of the member's earlier claims in the last 90 days (null: none)",
    "history_days": "Days of the 90-day feature window (the claim's day included) that hold received claims",
    "claim_duration_days": "Service end date - service start date, in days",
    # gold.member_features
    "as_of_date": "Day of the latest claim received: utilisation covers the 365 days up to it",
    "age": "Age in years at the as-of date",
    "age_group": "Age band at the as-of date",
    "is_smoker": "True if the enrolment screening says the member smokes",
    "chronic_condition_count": "Number of chronic-condition flags set",
    "num_claims": "Medical claims in the last 365 days",
    "num_er_visits": "Emergency claims in the last 365 days",
    "num_inpatient_stays": "Inpatient claims in the last 365 days",
    "num_outpatient_visits": "Outpatient claims in the last 365 days",
    "num_distinct_providers": "Distinct rendering providers in the last 365 days",
    "num_rx_fills": "Pharmacy fills in the last 365 days",
    "num_immunizations": "Immunizations recorded up to the as-of date",
    "total_claim_amount": "Billed medical amount in the last 365 days (USD)",
    "total_paid_amount": "Paid medical amount in the last 365 days (USD)",
    "total_rx_amount": "Pharmacy amount in the last 365 days (USD)",
    "total_cost": "Paid medical + pharmacy amount in the last 365 days (USD)",
    "last_flu_vaccine_date": "Most recent flu vaccine (null if none recorded)",
    "vaccines_received": "Vaccine codes recorded for the member, sorted",
    # gold.member_window: the running state of member_features' window
    **{
        f"last_dx_{name}": f"Last service day of a claim with a {name.replace('_', ' ')} diagnosis (null: none)"
        for name in CHRONIC_CONDITIONS
    },
    **{
        f"last_rx_{name}": f"Last fill day of a {drug_class} drug (null: none)"
        for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
        if drug_class is not None
    },
    # gold.claim_features: claim context the fraud autoencoder sees (from claims received up to that day)
    "identical_claims_before": "Earlier claims of the same member, provider, procedure and service date",
    "lines_same_visit": "Claim lines of the same member, provider and service date",
    "amount_to_procedure_typical": "Billed amount / the geometric-mean amount of the procedure's claims in the last 90 days",
    "procedure_share_for_diagnosis": "Share of the diagnosis's claims in the last 90 days billed with this procedure",
    # gold.fraud_scores_*
    "fraud_score": "Normalised reconstruction error of the claim under the autoencoder (higher = more unusual)",
    "score_percentile": "Percentile of the score among the model's calibration scores (0-100)",
    "is_flagged_p95": "Score above the model's p95 threshold (from calibration claims no model trained on)",
    "is_flagged_p99": "Score above the model's p99 threshold (from calibration claims no model trained on)",
    "in_training_window": "The model learnt from claims of this day: the day is not scored forward",
    "top_features": "Features whose reconstruction error contributed most to the score, largest first",
    "scored_at": "When the row was scored (UTC)",
    # gold.member_risk_predictions
    "risk_score": "Predicted actuarial risk score, 0-100",
    "high_risk_prediction": "Predicted high-risk member (risk score at or above the high-risk cut)",
    "high_risk_score": "Probability the member is high-risk, from the high-risk classifier",
    "predicted_total_cost": "Predicted total annual cost (USD)",
    # gold.immunization_master_outreach_list
    "due_vaccines": "Vaccines the member is due for under the outreach rules, comma-separated",
    "overdue_vaccines": "Due vaccines past their interval by more than the grace period",
    "gaps_in_care": "Number of due or overdue vaccines",
    "reasons": "Why each vaccine is due (age or condition rule), one entry per vaccine",
    "outreach_tier": "1 = contact first; combines overdue gaps and predicted risk",
    "tier_reason": "Why the member is in this tier",
    "outreach_priority_score": "Priority for outreach: predicted risk weighted with gaps in care (higher first)",
    "outreach_rank": "Position in the outreach list (1 = first), ties broken by member key",
    # monitoring.psi_metrics
    "feature": "Feature whose distribution is compared with the reference window",
    "feature_type": "numeric (reference-quantile bins) or categorical (one bin per category)",
    "model_feature": "True if the fraud models use the feature",
    "protected_attribute": "True for gender, region and age group (demographic drift)",
    "gated": "True if both windows are large enough for the PSI gate to judge this row",
    "psi": "Population stability index of the day against the reference window",
    "reference_start": "First day of the reference window",
    "reference_end": "Last day of the reference window",
    "reference_rows": "Rows in the reference window",
    "current_rows": "Rows on the monitored day",
    "bins": "JSON: bin edges or categories, labels and counts of both windows",
    # monitoring.drift_summary
    "statistical_drift": "Mean PSI of the gated model features (capped at 1)",
    "demographic_drift": "Largest PSI of the protected attributes (capped at 1)",
    "performance_drift": "Relative degradation of the model metric vs its reference (0 when unavailable)",
    "performance_available": "True if a model metric was available for the day",
    "performance_metric": "Name of the model metric used for performance drift",
    "composite_score": "0.4 x statistical + 0.3 x demographic + 0.3 x performance drift",
    "features_monitored": "Number of gated features in the day's PSI",
    "worst_feature": "Feature with the largest PSI that day",
    "worst_psi": "PSI of that feature",
    # governance.fairness_monitoring
    "model_type": "Fraud autoencoder family (catboost or xgboost)",
    "attribute": "Protected attribute the row judges",
    "protected_group": "Value of the protected attribute (the group)",
    "reference_group": "Group the others are compared with: the attribute's largest judged group unless configured",
    "compared_with": "What the ratio compares the group with: the reference group, or <other groups> for the "
    "reference itself",
    "group_size": "Scored claims of the group that day",
    "flagged": "Claims of the group the model flagged (is_flagged_p95 of its scored table)",
    "flag_rate": "flagged / group_size",
    "comparison_rate": "Flag rate of what the group is compared with (see compared_with)",
    "disparate_impact": "flag_rate / comparison_rate; bias above 1.25 when confirmed; null when undefined",
    "disparate_impact_note": "Why disparate_impact is undefined (a comparison rate of 0), else null",
    "chi_square_p_value": "p-value of Pearson's chi-square test of flag vs group for the attribute that day",
    "confirming_p_value": "The test's p-value Holm-Bonferroni adjusted over every day and attribute of the run: "
    "below 0.05 an out-of-band ratio is confirmed",
    "status": "Row status: fair, bias, below_reference, not_significant, reference or insufficient_data (fairness); "
    "ok, warning, error (drift)",
    "attribute_status": "Attribute status that day: fair, warning (p < 0.05), bias or insufficient_data",
    "legitimate_claims": "Claims of the group not labelled fraud that day (null on a day without fraud labels)",
    "false_positives": "Of them, the claims the model flagged",
    "false_positive_rate": "false_positives / legitimate_claims (null without labels or legitimate claims)",
    "evaluated_at": "When the fairness analysis ran (UTC)",
    # governance.model_audit_log
    "model_name": "Registered model name in the MLflow registry",
    "model_version": "Model version (registry version, or the MLflow run id of a scored model)",
    "deployed_by": "Who launched the promotion: the run's user tag, else dagster: followed by the job name",
    "fairness_validated": "True when the model's fairness gate passed",
    "psi_score": "Largest gated PSI of the latest drift monitoring (null before any)",
    "gate_results": "JSON list of every gate: name, passed, detail",
    "promoted": "True when the version became champion",
    "decided_at": "When the promotion was decided (UTC)",
    "run_id": "Dagster run that wrote the row",
    # governance.gate_summary
    "asset": "Asset the check judges (its key, e.g. bronze/medical_claims)",
    "check_name": "Name of the asset check (the gate)",
    "gate_status": "Latest state: passed, failed (ERROR), warning (WARN), execution failed (its run failed first), "
    "skipped, in progress or never run",
    "severity": "Severity of the latest evaluation: ERROR or WARN (null when not evaluated)",
    "blocking": "True when a failure at ERROR stops the downstream assets of the same run",
    "days": "The day or day range the latest execution judged (null: every stored day, or unpartitioned)",
    "gate_reason": "Why the gate ended as it did: the check's description, or why its run stopped before it",
    "numbers": "The evaluation's non-zero numbers (counts, largest values), rounded: name=value, ...",
    "check_evaluated_at": "When the latest execution of the check was recorded (UTC)",
    "summarised_at": "When the gate summary was materialised (UTC)",
    **{
        f"has_{name}": f"{name.upper() if len(name) <= 4 else name.capitalize()}: diagnosis {prefix}*"
        + (f" or a {drug_class} fill" if drug_class else "")
        + " in the last 365 days"
        for name, (prefix, drug_class) in CHRONIC_CONDITIONS.items()
    },
}

FEED_COLUMNS = {column.name: column.description for source in SOURCES.values() for column in source.columns}

COLUMN_DESCRIPTIONS: dict[str, str] = {**FEED_COLUMNS, **INGEST_COLUMNS, **DERIVED_COLUMNS}


def column_description(name: str) -> str | None:
    """The description of a column, or None for a column nobody has described yet."""
    return COLUMN_DESCRIPTIONS.get(name)
