"""Jobs and schedules of the daily pipeline."""

from datetime import UTC, date, datetime, timedelta

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


def last_complete_day(now: datetime) -> date:
    """The newest daily partition that has ended at `now` (partitions are UTC days)."""
    return now.astimezone(UTC).date() - timedelta(days=1)


def build_daily_pipeline_schedule(timezone: str = "UTC") -> dg.ScheduleDefinition:
    """02:00 in `timezone` every day, for the newest UTC day that has ended by then."""

    # build_schedule_from_partitioned_job fixes the time zone to the partitions' (UTC); this one is configurable
    @dg.schedule(
        name="daily_pipeline_schedule",
        job=daily_pipeline_job,
        cron_schedule="0 2 * * *",
        execution_timezone=timezone,
        description="Runs the daily pipeline at 02:00 (SCHEDULE_TIMEZONE) for the newest day that has ended.",
    )
    def daily_pipeline_schedule(context: dg.ScheduleEvaluationContext):
        day = last_complete_day(context.scheduled_execution_time).isoformat()
        return dg.RunRequest(run_key=day, partition_key=day)

    return daily_pipeline_schedule


def build_schedules(timezone: str = "UTC") -> list[dg.ScheduleDefinition]:
    return [build_daily_pipeline_schedule(timezone)]


jobs = [daily_pipeline_job, data_quality_checks_job, risk_model_training_job]
schedules = build_schedules()
