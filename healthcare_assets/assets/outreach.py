"""Immunization outreach: members due or overdue for vaccines, tiered and ranked by risk and gaps in care."""

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets.assets.common import SPARK_DELTA
from healthcare_assets.assets.gold import MEMBER_FEATURES_KEY
from healthcare_assets.assets.risk import MEMBER_RISK_PREDICTIONS_KEY, RISK_OWNERS
from healthcare_assets.assets.silver import SILVER_KEYS
from healthcare_assets.partitions import single_run_backfill
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.transforms import risk as risk_transforms

OUTREACH_KEY = dg.AssetKey(["gold", "immunization_master_outreach_list"])


@dg.asset(
    key=OUTREACH_KEY,
    ins={"features": dg.AssetIn(MEMBER_FEATURES_KEY)},
    deps=[MEMBER_RISK_PREDICTIONS_KEY, SILVER_KEYS["immunizations"]],
    description="Members due or overdue for immunizations (age and condition rules of domain/outreach.py) with "
    "the latest risk prediction: due and overdue vaccines, the reasons, outreach tier and priority score, "
    "ranked by priority (one row per member).",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=RISK_OWNERS,
    backfill_policy=single_run_backfill,
)
def immunization_master_outreach_list(features: DataFrame, lakehouse: LakehouseResource) -> DataFrame:
    storage = lakehouse.storage()
    predictions = storage.read(TableRef.from_path(MEMBER_RISK_PREDICTIONS_KEY.path))
    latest_day = predictions.agg(F.max(PARTITION_COLUMN)).collect()[0][0]
    if latest_day is None:
        raise dg.Failure("gold.member_risk_predictions is empty: score at least one day first")
    as_of = features.agg(F.max("as_of_date")).collect()[0][0]
    immunizations = storage.read(TableRef.from_path(SILVER_KEYS["immunizations"].path))
    latest = predictions.where(F.col(PARTITION_COLUMN) == F.lit(latest_day))
    return risk_transforms.outreach_list(features, latest, immunizations, as_of)
