"""Jobs and schedules of the daily pipeline."""

import dagster as dg

from healthcare_assets.partitions import daily_partitions

# Landing through gold for one day; the unpartitioned member tables refresh after the day's partitions.
daily_pipeline_job = dg.define_asset_job(
    name="daily_pipeline",
    selection=dg.AssetSelection.groups("landing", "bronze", "silver", "gold"),
    partitions_def=daily_partitions,
    description="Ingests one day's feeds into bronze, silver and gold, with every data-quality gate.",
)

# Re-evaluates every data-quality gate for a day (or a range) without rematerialising anything.
data_quality_checks_job = dg.define_asset_job(
    name="data_quality_checks",
    selection=dg.AssetSelection.all_asset_checks(),
    partitions_def=daily_partitions,
    description="Runs every asset check against the stored tables for the chosen day(s).",
)

# Retrains the member risk models and promotes the new version only when every promotion gate passes; the daily
# pipeline's scoring (gold.member_risk_predictions) always uses the current champion.
risk_model_training_job = dg.define_asset_job(
    name="risk_model_training",
    selection=dg.AssetSelection.groups("risk"),
    description="Trains the member risk models on the current gold.member_features, gates and promotes them.",
)

# 02:00 every day, for the day that just ended.
daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(daily_pipeline_job, hour_of_day=2)

jobs = [daily_pipeline_job, data_quality_checks_job, risk_model_training_job]
schedules = [daily_pipeline_schedule]
