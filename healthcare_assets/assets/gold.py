"""Gold: the feature tables the fraud and risk models train and score on."""

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets.assets.common import SPARK_DELTA, run_day_range, zorder_by
from healthcare_assets.assets.silver import DIM_MEMBERS_KEY, SILVER_KEYS
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms import gold

CLAIM_FEATURES_KEY = dg.AssetKey(["gold", "claim_features"])
MEMBER_FEATURES_KEY = dg.AssetKey(["gold", "member_features"])
ML_OWNERS = ["team:data-engineering", "team:fraud-ml"]


@dg.asset(
    key=CLAIM_FEATURES_KEY,
    ins={
        "claim_history": dg.AssetIn(
            SILVER_KEYS["medical_claims"],
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-gold.CLAIM_HISTORY_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
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
    return gold.claim_features(claims, claim_history, members)


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
    members: DataFrame, claims: DataFrame, pharmacy_claims: DataFrame, immunizations: DataFrame
) -> DataFrame:
    as_of = claims.agg(F.max(PARTITION_COLUMN)).first()[0]
    if as_of is None:
        raise dg.Failure("silver.medical_claims is empty: materialise at least one day of claims first")
    return gold.member_features(members, claims, pharmacy_claims, immunizations, as_of)
