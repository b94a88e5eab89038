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
    # the fraud gates judge model runs, not stored tables
    selection=dg.AssetSelection.all_asset_checks() - dg.AssetSelection.groups("fraud"),
    partitions_def=daily_partitions,
    description="Runs every asset check against the stored tables for the chosen day(s).",
)

# 02:00 every day, for the day that just ended.
daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(daily_pipeline_job, hour_of_day=2)

# Both autoencoders train at the same time (separate processes), then evaluation and the day's scoring.
fraud_model_training_job = dg.define_asset_job(
    name="fraud_model_training",
    selection=dg.AssetSelection.groups("fraud")
    | dg.AssetSelection.keys(["gold", "fraud_scores_catboost"], ["gold", "fraud_scores_xgboost"]),
    partitions_def=daily_partitions,
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    description="Trains the CatBoost and XGBoost fraud autoencoders in parallel, evaluates them against the "
    "labels and the IsolationForest baseline, and scores the chosen day(s).",
)

jobs = [daily_pipeline_job, data_quality_checks_job, fraud_model_training_job]
schedules = [daily_pipeline_schedule]
