"""Tick logic of the monitoring and fairness schedules: run requests, partitions, tags, time zones."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from assets_tests.pipeline import RANGE_END_TAG, RANGE_START_TAG
from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
from healthcare_assets.assets.monitoring import PSI_METRICS_KEY
from healthcare_assets.automation.jobs import SCHEDULE_TAG
from healthcare_assets.definitions import build_definitions
from healthcare_assets.settings import load_settings

MONITORING_SCHEDULES = {
    "monitoring_schedule": ("drift_monitoring", "0 6 * * *"),
    "drift_monitoring_schedule": ("drift_monitoring", "0 */6 * * *"),
    "fraud_fairness_schedule": ("fairness_monitoring", "0 */4 * * *"),
    "weekly_fairness_audit_schedule": ("fairness_monitoring", "0 7 * * 1"),
}


@pytest.fixture
def instance():
    # persistent (a temporary folder): a schedule context reaches the instance through its reference
    with dg.instance_for_test() as instance:
        yield instance


def _defs(timezone: str = "UTC") -> dg.Definitions:
    return build_definitions(load_settings({"SCHEDULE_TIMEZONE": timezone}))


def _tick(defs, instance, name: str, tick: datetime):
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    return defs.resolve_schedule_def(name).evaluate_tick(context)


def test_monitoring_schedules_are_registered_stopped_in_the_configured_time_zone():
    defs = _defs("America/New_York")
    for name, (job, cron) in MONITORING_SCHEDULES.items():
        schedule = defs.resolve_schedule_def(name)
        assert (schedule.job_name, schedule.cron_schedule) == (job, cron)
        assert schedule.execution_timezone == "America/New_York"
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    "timezone, partition",
    [("UTC", "2026-01-14"), ("Asia/Tokyo", "2026-01-13")],  # 06:00 Tokyo = 21:00 UTC on the 14th: not ended yet
)
def test_monitoring_schedule_runs_the_newest_ended_day_once(instance, timezone, partition):
    defs = _defs(timezone)
    tick = datetime(2026, 1, 15, 6, 0, tzinfo=ZoneInfo(timezone))
    [request] = _tick(defs, instance, "monitoring_schedule", tick).run_requests
    assert request.partition_key == partition
    assert request.run_key == f"monitoring-{partition}"
    assert request.tags[SCHEDULE_TAG] == "monitoring"


def _materialize(instance, key: dg.AssetKey, partition: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


def test_drift_monitoring_runs_only_when_the_days_features_changed_since_its_psi(instance):
    defs = _defs()
    tick = datetime(2026, 1, 15, 12, 0, tzinfo=ZoneInfo("UTC"))
    nothing = _tick(defs, instance, "drift_monitoring_schedule", tick)
    assert nothing.run_requests == [] and "no partition 2026-01-14" in nothing.skip_message

    _materialize(instance, CLAIM_FEATURES_KEY, "2026-01-14")
    [request] = _tick(defs, instance, "drift_monitoring_schedule", tick).run_requests
    assert request.partition_key == "2026-01-14" and request.tags[SCHEDULE_TAG] == "drift_monitoring"

    _materialize(instance, PSI_METRICS_KEY, "2026-01-14")
    up_to_date = _tick(defs, instance, "drift_monitoring_schedule", tick)
    assert up_to_date.run_requests == [] and "up to date" in up_to_date.skip_message

    _materialize(instance, PSI_METRICS_KEY, "2026-01-13")  # another day's PSI does not count
    _materialize(instance, CLAIM_FEATURES_KEY, "2026-01-14")  # the day was re-run: drift is recomputed
    [again] = _tick(defs, instance, "drift_monitoring_schedule", tick).run_requests
    assert again.partition_key == "2026-01-14"


def test_fraud_fairness_runs_every_four_hours_for_the_newest_ended_day(instance):
    defs = _defs()
    requests = [
        _tick(
            defs, instance, "fraud_fairness_schedule", datetime(2026, 1, 15, hour, 0, tzinfo=ZoneInfo("UTC"))
        ).run_requests[0]
        for hour in (0, 4, 20)
    ]
    assert {(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests} == {("2026-01-14", "2026-01-14")}
    assert all(r.run_key is None and r.tags[SCHEDULE_TAG] == "fraud_fairness" for r in requests)


def test_weekly_fairness_audit_covers_the_seven_ended_days_as_one_run(instance):
    defs = _defs()
    monday = datetime(2026, 1, 19, 7, 0, tzinfo=ZoneInfo("UTC"))
    [request] = _tick(defs, instance, "weekly_fairness_audit_schedule", monday).run_requests
    assert request.partition_key is None
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2026-01-12", "2026-01-18")
    assert request.run_key == "fairness-audit-2026-01-12"
    assert request.tags[SCHEDULE_TAG] == "weekly_fairness_audit"
