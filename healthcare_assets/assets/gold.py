"""Gold: the feature tables the fraud and risk models train and score on."""

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets import catalog
from healthcare_assets.assets.common import SPARK_DELTA, run_day_range, zorder_by
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, SILVER_KEYS
from healthcare_assets.domain.features import CHRONIC_CONDITIONS
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms import gold

CLAIM_FEATURES_KEY = dg.AssetKey(["gold", "claim_features"])
MEMBER_FEATURES_KEY = dg.AssetKey(["gold", "member_features"])
ML_OWNERS = ["team:data-engineering", "team:fraud-ml"]

# Column lineage of the feature tables: columns not listed keep their upstream name.
_CLAIMS, _RX, _SHOTS = (SILVER_KEYS[name] for name in ("medical_claims", "pharmacy_claims", "immunizations"))
_AGE = [(DIM_MEMBERS_KEY, "birth_year"), (_CLAIMS, "service_start_date")]
CLAIM_FEATURE_SOURCES = {
    "claim_date": [(_CLAIMS, "service_start_date")],
    "patient_age": _AGE,
    "patient_age_group": _AGE,
    "patient_gender": [(DIM_MEMBERS_KEY, "gender")],
    "days_since_last_claim": [(_CLAIMS, "member_key"), (_CLAIMS, "service_start_date")],
    "claim_rate_30d": [(_CLAIMS, "member_key"), (_CLAIMS, "claim_id"), (_CLAIMS, PARTITION_COLUMN)],
    "claim_rate_90d": [(_CLAIMS, "member_key"), (_CLAIMS, "claim_id"), (_CLAIMS, PARTITION_COLUMN)],
    "amount_to_member_mean": [(_CLAIMS, "member_key"), (_CLAIMS, "claim_amount")],
    "history_days": [(_CLAIMS, PARTITION_COLUMN)],
    "claim_duration_days": [(_CLAIMS, "service_start_date"), (_CLAIMS, "service_end_date")],
    "identical_claims_before": [
        (_CLAIMS, column) for column in ("member_key", "provider_id", "procedure_code", "service_start_date")
    ],
    "lines_same_visit": [(_CLAIMS, column) for column in ("member_key", "provider_id", "service_start_date")],
    "amount_to_procedure_typical": [(_CLAIMS, "procedure_code"), (_CLAIMS, "claim_amount")],
    "procedure_share_for_diagnosis": [(_CLAIMS, "diagnosis_code"), (_CLAIMS, "procedure_code")],
}
_DEMOGRAPHICS = ("member_key", "gender", "geographic_region", "plan_code", "enrollment_status", "bmi")
_CLAIM_COUNTS = ("num_claims", "num_er_visits", "num_inpatient_stays", "num_outpatient_visits")
MEMBER_FEATURE_SOURCES = {
    "as_of_date": [(_CLAIMS, PARTITION_COLUMN)],
    "age": [(DIM_MEMBERS_KEY, "birth_year"), (_CLAIMS, PARTITION_COLUMN)],
    "age_group": [(DIM_MEMBERS_KEY, "birth_year"), (_CLAIMS, PARTITION_COLUMN)],
    "is_smoker": [(DIM_MEMBERS_KEY, "smoker")],
    **{name: [(_CLAIMS, "claim_id"), (_CLAIMS, "claim_type")] for name in _CLAIM_COUNTS},
    "num_distinct_providers": [(_CLAIMS, "provider_id")],
    "total_claim_amount": [(_CLAIMS, "claim_amount")],
    "total_paid_amount": [(_CLAIMS, "paid_amount")],
    "num_rx_fills": [(_RX, "rx_claim_id")],
    "total_rx_amount": [(_RX, "rx_amount")],
    "total_cost": [(_CLAIMS, "paid_amount"), (_RX, "rx_amount")],
    "num_immunizations": [(_SHOTS, "immunization_id")],
    "last_flu_vaccine_date": [(_SHOTS, "vaccine_code"), (_SHOTS, "administered_date")],
    "vaccines_received": [(_SHOTS, "vaccine_code")],
    "chronic_condition_count": [(_CLAIMS, "diagnosis_code"), (_RX, "drug_class")],
    **{
        f"has_{name}": [(_CLAIMS, "diagnosis_code"), *([(_RX, "drug_class")] if drug_class else [])]
        for name, (_, drug_class) in CHRONIC_CONDITIONS.items()
    },
}


@dg.asset(
    key=CLAIM_FEATURES_KEY,
    ins={
        "claim_history": dg.AssetIn(
            SILVER_KEYS["medical_claims"],
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-gold.CLAIM_FEATURE_WINDOW_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
            ),
        ),
        "members": dg.AssetIn(DIM_MEMBERS_KEY),
    },
    description="Claim-level features of the fraud autoencoder (amount, patient age, provider experience, "
    "member claim history, duration, codes, protected attributes), one row per claim received that day.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=ML_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    metadata=zorder_by("member_key", "claim_date"),
)
def claim_features(context: dg.AssetExecutionContext, claim_history: DataFrame, members: DataFrame) -> DataFrame:
    start, end = run_day_range(context)
    claims = claim_history.where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))
    features = gold.claim_features(claims, claim_history, members)
    upstream = {_CLAIMS: claim_history.columns, DIM_MEMBERS_KEY: members.columns}
    context.add_output_metadata(catalog.column_lineage(features.columns, upstream, CLAIM_FEATURE_SOURCES))
    return features


@dg.asset(
    key=MEMBER_FEATURES_KEY,
    ins={
        "members": dg.AssetIn(DIM_MEMBERS_KEY),
        "claims": dg.AssetIn(SILVER_KEYS["medical_claims"]),
        "pharmacy_claims": dg.AssetIn(SILVER_KEYS["pharmacy_claims"]),
        "immunizations": dg.AssetIn(SILVER_KEYS["immunizations"]),
    },
    description="One row per current member: demographics, BMI and smoking, 12-month utilisation and cost, "
    "chronic-condition flags, immunization history; as of the latest claim received.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=["team:data-engineering", "team:risk-ml"],
    backfill_policy=single_run_backfill,
)
def member_features(
    context: dg.AssetExecutionContext,
    members: DataFrame,
    claims: DataFrame,
    pharmacy_claims: DataFrame,
    immunizations: DataFrame,
) -> DataFrame:
    as_of = claims.agg(F.max(PARTITION_COLUMN)).collect()[0][0]
    if as_of is None:
        raise dg.Failure("silver.medical_claims is empty: materialise at least one day of claims first")
    features = gold.member_features(members, claims, pharmacy_claims, immunizations, as_of)
    lineage = catalog.column_lineage(features.columns, {DIM_MEMBERS_KEY: _DEMOGRAPHICS}, MEMBER_FEATURE_SOURCES)
    context.add_output_metadata(lineage)
    return features
