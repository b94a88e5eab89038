"""Jobs and schedules of the daily pipeline."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
from healthcare_assets.assets.monitoring import PSI_METRICS_KEY
from healthcare_assets.assets.reports import REPORT_KEYS
from healthcare_assets.checks.governance import governance_checks
from healthcare_assets.partitions import daily_partitions

# Landing through gold for one day; the unpartitioned member tables refresh after the day's partitions.
# What the models write (scores, predictions, the outreach list built on them) and the model assets themselves.
MODELS_AND_OUTPUTS = dg.AssetSelection.groups("fraud", "risk", "governance").downstream()

# Landing through the gold feature tables: never waits for a model, so a day is ingested even before any champion.
daily_pipeline_job = dg.define_asset_job(
    name="daily_pipeline",
    selection=dg.AssetSelection.groups("landing", "bronze", "silver", "gold") - MODELS_AND_OUTPUTS,
    partitions_def=daily_partitions,
    description="Ingests one day's feeds into bronze, silver and the gold feature tables, with every data-quality "
    "gate.",
)

# Batch scoring of the day with the current champions: fraud scores, risk predictions, the outreach list.
daily_scoring_job = dg.define_asset_job(
    name="daily_scoring",
    selection=dg.AssetSelection.groups("gold") & MODELS_AND_OUTPUTS,
    partitions_def=daily_partitions,
    description="Scores the day's claims and members with the champion models and rebuilds the outreach list.",
)

# Re-evaluates every data-quality gate for a day (or a range) without rematerialising anything.
data_quality_checks_job = dg.define_asset_job(
    name="data_quality_checks",
    # the drift gates run with the monitoring job (re-running them here would request retraining again);
    # model gates judge training runs; model outputs have their own job (model_output_checks)
    selection=dg.AssetSelection.all_asset_checks() - dg.AssetSelection.checks(*governance_checks) - MODELS_AND_OUTPUTS,
    partitions_def=daily_partitions,
    description="Runs every asset check against the stored tables for the chosen day(s).",
)

# The monitoring gates of what the models wrote (prediction volume, MAE drift, score and prediction tables).
model_output_checks_job = dg.define_asset_job(
    name="model_output_checks",
    selection=dg.AssetSelection.all_asset_checks() & (dg.AssetSelection.groups("gold") & MODELS_AND_OUTPUTS),
    partitions_def=daily_partitions,
    description="Runs the checks of the scored tables (fraud scores, risk predictions, outreach list) for the "
    "chosen day(s).",
)

# Retrains the member risk models and promotes the new version only when every promotion gate passes; the daily
# pipeline's scoring (gold.member_risk_predictions) always uses the current champion.
risk_model_training_job = dg.define_asset_job(
    name="risk_model_training",
    selection=dg.AssetSelection.groups("risk"),
    description="Trains the member risk models on the current gold.member_features, gates and promotes them.",
)

# Both autoencoders train at the same time (separate processes), then evaluation and the day's scoring.
fraud_model_training_job = dg.define_asset_job(
    name="fraud_model_training",
    # the fairness of the new scores is part of training: registered_fraud_model promotes only on its result
    selection=dg.AssetSelection.groups("fraud")
    | dg.AssetSelection.keys(
        ["gold", "fraud_scores_catboost"], ["gold", "fraud_scores_xgboost"], ["governance", "fairness_monitoring"]
    ),
    partitions_def=daily_partitions,
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    description="Trains the CatBoost and XGBoost fraud autoencoders in parallel, evaluates them against the "
    "labels and the IsolationForest baseline, scores the chosen day(s), checks the fairness of the flags and "
    "promotes the better model when every gate passed.",
)


# PSI per feature and the composite drift score for a day (or a range), with the drift gates.
monitoring_job = dg.define_asset_job(
    name="drift_monitoring",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=daily_partitions,
    description="PSI of every claim feature vs the reference window, the composite drift score and the drift gates.",
)

# Retrains every model; requested by the drift sensor when a drift gate fails. The model groups are selected by
# name, so the job picks up every model asset in them; an empty group selects nothing and still loads.
MODEL_GROUPS = ("fraud", "risk")
model_retraining_job = dg.define_asset_job(
    name="model_retraining",
    selection=dg.AssetSelection.groups(*MODEL_GROUPS),
    description="Retrains the fraud and risk models on the current features (challenger candidates; promotion "
    "only after every gate passed).",
)

FAIRNESS_GROUPS = ("governance",)
# the audit log and the gate summary are unpartitioned reports of every run: their own job
GOVERNANCE_REPORTS = dg.AssetSelection.assets(*REPORT_KEYS)
fairness_monitoring_job = dg.define_asset_job(
    name="fairness_monitoring",
    selection=dg.AssetSelection.groups(*FAIRNESS_GROUPS) - GOVERNANCE_REPORTS,
    partitions_def=daily_partitions,
    description="Fairness reports and gates (disparate impact, chi-square) on the fraud scores.",
)


# Puts the current champions behind their serving endpoints and probes them against batch scores.
model_serving_job = dg.define_asset_job(
    name="model_serving",
    selection=dg.AssetSelection.groups("serving"),
    description="Deploys each champion to its serving endpoint (a local MLflow scoring server on a laptop) and "
    "checks the endpoint scores the latest day exactly as batch scoring does.",
)

governance_reports_job = dg.define_asset_job(
    name="governance_reports",
    selection=GOVERNANCE_REPORTS,
    description="Summarises the model audit log and lists the latest result of every gate (governance/gate_summary).",
)


def last_complete_day(now: datetime) -> date:
    """The newest daily partition that has ended at `now` (partitions are UTC days)."""
    return now.astimezone(UTC).date() - timedelta(days=1)


def build_daily_schedule(job, hour: int, timezone: str = "UTC") -> dg.ScheduleDefinition:
    """`hour`:00 in `timezone` every day, for the newest UTC day that has ended by then."""

    # build_schedule_from_partitioned_job fixes the time zone to the partitions' (UTC); this one is configurable
    @dg.schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=f"0 {hour} * * *",
        execution_timezone=timezone,
        description=f"Runs {job.name} at {hour:02d}:00 (SCHEDULE_TIMEZONE) for the newest day that has ended.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        day = last_complete_day(context.scheduled_execution_time).isoformat()
        return dg.RunRequest(run_key=day, partition_key=day)

    return _schedule


def build_daily_pipeline_schedule(timezone: str = "UTC") -> dg.ScheduleDefinition:
    return build_daily_schedule(daily_pipeline_job, 2, timezone)


SCHEDULE_TAG = "healthcare/schedule"


def _day_request(context: dg.ScheduleEvaluationContext, schedule: str, run_key: str | None) -> dg.RunRequest:
    day = last_complete_day(context.scheduled_execution_time).isoformat()
    return dg.RunRequest(
        run_key=run_key.format(day=day) if run_key else None, partition_key=day, tags={SCHEDULE_TAG: schedule}
    )


def _range_request(schedule: str, start: date, end: date, run_key: str | None = None) -> dg.RunRequest:
    # a partition range by tags: valid before the fairness job's assets (and so its partitioning) exist
    return dg.RunRequest(
        run_key=run_key,
        tags={
            SCHEDULE_TAG: schedule,
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
    )


def build_monitoring_schedules(timezone: str = "UTC") -> list[dg.ScheduleDefinition]:
    """Drift monitoring at 06:00 and every 6 h; fraud fairness every 4 h and a weekly audit (Mondays 07:00)."""

    @dg.schedule(
        name="monitoring_schedule",
        job=monitoring_job,
        cron_schedule="0 6 * * *",
        execution_timezone=timezone,
        description="PSI metrics, drift summary and drift gates at 06:00 (SCHEDULE_TIMEZONE) for the newest ended day.",
    )
    def monitoring_schedule(context: dg.ScheduleEvaluationContext):
        return _day_request(context, "monitoring", "monitoring-{day}")

    @dg.schedule(
        name="drift_monitoring_schedule",
        job=monitoring_job,
        cron_schedule="0 */6 * * *",
        execution_timezone=timezone,
        description="Every 6 h: recomputes drift for the newest ended day when its claim features changed since "
        "its PSI metrics were computed (late or re-run data); otherwise skips, so one drift does not retrain twice.",
    )
    def drift_monitoring_schedule(context: dg.ScheduleEvaluationContext):
        day = last_complete_day(context.scheduled_execution_time).isoformat()
        features = _latest_materialization_id(context.instance, CLAIM_FEATURES_KEY, day)
        monitored = _latest_materialization_id(context.instance, PSI_METRICS_KEY, day)
        if features is None:
            return dg.SkipReason(f"gold/claim_features has no partition {day} yet")
        if monitored is not None and monitored > features:
            return dg.SkipReason(f"drift of {day} is up to date with its claim features")
        return _day_request(context, "drift_monitoring", None)

    @dg.schedule(
        name="fraud_fairness_schedule",
        job=fairness_monitoring_job,
        cron_schedule="0 */4 * * *",
        execution_timezone=timezone,
        description="Every 4 h: fairness of the fraud scores of the newest ended day.",
    )
    def fraud_fairness_schedule(context: dg.ScheduleEvaluationContext):
        day = last_complete_day(context.scheduled_execution_time)
        return _range_request("fraud_fairness", day, day)

    @dg.schedule(
        name="weekly_fairness_audit_schedule",
        job=fairness_monitoring_job,
        cron_schedule="0 7 * * 1",
        execution_timezone=timezone,
        description="Mondays 07:00: fairness over the seven days that ended, as one run over the range.",
    )
    def weekly_fairness_audit_schedule(context: dg.ScheduleEvaluationContext):
        end = last_complete_day(context.scheduled_execution_time)
        start = end - timedelta(days=6)
        return _range_request("weekly_fairness_audit", start, end, run_key=f"fairness-audit-{start.isoformat()}")

    return [monitoring_schedule, drift_monitoring_schedule, fraud_fairness_schedule, weekly_fairness_audit_schedule]


def _latest_materialization_id(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> int | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].storage_id if records else None


def build_schedules(timezone: str = "UTC") -> list[dg.ScheduleDefinition]:
    # ingestion at 02:00, scoring with the champions at 03:00, monitoring from 06:00
    return [
        build_daily_pipeline_schedule(timezone),
        build_daily_schedule(daily_scoring_job, 3, timezone),
        *build_monitoring_schedules(timezone),
    ]


jobs = [
    daily_pipeline_job,
    daily_scoring_job,
    model_output_checks_job,
    data_quality_checks_job,
    fraud_model_training_job,
    risk_model_training_job,
    monitoring_job,
    model_retraining_job,
    fairness_monitoring_job,
    model_serving_job,
    governance_reports_job,
]
schedules = build_schedules()
