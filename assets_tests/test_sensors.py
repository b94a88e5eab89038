"""Sensor and schedule ticks against a real Dagster instance, with alerts delivered to a local HTTP receiver."""

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from assets_tests import receivers
from healthcare_assets.automation import jobs, sensors
from healthcare_assets.definitions import build_definitions
from healthcare_assets.resources.alerts import AlertsResource
from healthcare_assets.settings import ConfigurationError, load_settings

http_receiver = receivers.http_receiver  # fixture


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _slack(receiver) -> AlertsResource:
    return AlertsResource(
        channels=["slack"],
        slack_webhook_url=f"http://127.0.0.1:{receiver.server_port}/hook",
        dagster_url="http://127.0.0.1:3000",
        backoff_seconds=0.01,
    )


# --- drift sensor: a monitored asset and an ERROR-severity PSI gate defined here -------------------------------------


class DriftConfig(dg.Config):
    psi: float


@dg.asset(key=["ml", "monitored_scores"])
def monitored_scores(config: DriftConfig) -> float:
    return config.psi


# cleared by a test to hold the PSI gate in progress
PSI_GATE_OPEN = threading.Event()
PSI_GATE_OPEN.set()


@dg.asset_check(asset=monitored_scores, name="psi_within_limits")
def psi_within_limits(monitored_scores: float) -> dg.AssetCheckResult:
    PSI_GATE_OPEN.wait(timeout=120)
    return dg.AssetCheckResult(
        passed=monitored_scores < 0.2,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"psi": monitored_scores, "threshold": 0.2, "note": "free text stays out of alerts"},
    )


@dg.asset_check(asset=monitored_scores, name="psi_early_warning")
def psi_early_warning(monitored_scores: float) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=monitored_scores < 0.1, severity=dg.AssetCheckSeverity.WARN)


PSI_CHECK = dg.AssetCheckKey(dg.AssetKey(["ml", "monitored_scores"]), "psi_within_limits")
WARN_CHECK = dg.AssetCheckKey(dg.AssetKey(["ml", "monitored_scores"]), "psi_early_warning")
retrain_job = dg.define_asset_job("retrain_models", selection=[monitored_scores])
drift_sensor = sensors.build_drift_sensor([PSI_CHECK, WARN_CHECK], retrain_job_name="retrain_models")
drift_defs = dg.Definitions(
    assets=[monitored_scores],
    asset_checks=[psi_within_limits, psi_early_warning],
    jobs=[retrain_job],
    sensors=[drift_sensor],
)


def _evaluate_checks(instance, psi: float) -> str:
    result = dg.materialize(
        [monitored_scores, psi_within_limits, psi_early_warning],
        instance=instance,
        run_config={"ops": {"ml__monitored_scores": {"config": {"psi": psi}}}},
        raise_on_error=False,
    )
    return result.run_id


def _tick(instance, cursor, alerts):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=drift_defs, resources={"alerts": alerts}
    )
    return drift_sensor(context)


def test_drift_sensor_requests_one_retraining_per_failed_error_evaluation(instance, http_receiver):
    alerts = _slack(http_receiver)
    first = _tick(instance, None, alerts)
    assert first.run_requests == [] and first.cursor

    _evaluate_checks(instance, psi=0.05)  # passes both gates
    passed = _tick(instance, first.cursor, alerts)
    assert passed.run_requests == []

    _evaluate_checks(instance, psi=0.15)  # only the WARN gate fails: no retraining
    warned = _tick(instance, passed.cursor, alerts)
    assert warned.run_requests == [] and http_receiver.requests == []

    failed_run = _evaluate_checks(instance, psi=0.31)
    failed = _tick(instance, warned.cursor, alerts)
    [request] = failed.run_requests
    assert request.job_name in (None, "retrain_models")
    assert request.tags["healthcare/failed_check"] == "ml/monitored_scores:psi_within_limits"
    assert request.tags["healthcare/check_run_id"] == failed_run
    [(_, _, body)] = http_receiver.requests
    assert body["text"] == "[CRITICAL] Drift gate psi_within_limits failed: retraining requested (retrain_models)"
    details = body["blocks"][1]["text"]["text"]
    assert "*psi*: 0.31" in details and "*threshold*: 0.2" in details and f"*run id*: {failed_run}" in details
    assert "free text" not in json.dumps(body)

    # the same failure never fires twice; each new failure fires once
    assert _tick(instance, failed.cursor, alerts).run_requests == []
    _evaluate_checks(instance, psi=0.4)
    _evaluate_checks(instance, psi=0.5)
    twice = _tick(instance, failed.cursor, alerts)
    assert len(twice.run_requests) == 2
    assert len({r.run_key for r in [request, *twice.run_requests]}) == 3
    assert _tick(instance, twice.cursor, alerts).run_requests == []
    assert len(http_receiver.requests) == 3


def test_drift_sensor_switched_on_after_old_failures_looks_at_the_latest_evaluation_only(instance, http_receiver):
    _evaluate_checks(instance, psi=0.9)
    _evaluate_checks(instance, psi=0.8)
    first = _tick(instance, None, _slack(http_receiver))
    assert len(first.run_requests) == 1  # the latest failed evaluation, not the whole history
    _evaluate_checks(instance, psi=0.01)
    assert _tick(instance, first.cursor, _slack(http_receiver)).run_requests == []


def test_drift_sensor_waits_for_an_evaluation_in_progress_and_then_fires_once(instance, http_receiver):
    alerts = _slack(http_receiver)
    cursor = _tick(instance, None, alerts).cursor
    PSI_GATE_OPEN.clear()
    run = threading.Thread(target=_evaluate_checks, args=(instance, 0.6))
    run.start()
    try:
        storage = instance.event_log_storage
        while not storage.get_asset_check_execution_history(PSI_CHECK, limit=1):  # wait for the check to be planned
            time.sleep(0.05)
        [planned] = storage.get_asset_check_execution_history(PSI_CHECK, limit=1)
        assert planned.event is None or planned.event.asset_check_evaluation is None
        during = _tick(instance, cursor, alerts)
        assert during.run_requests == []
        assert json.loads(during.cursor)["after"] < planned.id  # not past the evaluation in progress
    finally:
        PSI_GATE_OPEN.set()
        run.join()
    after = _tick(instance, during.cursor, alerts)
    assert len(after.run_requests) == 1
    assert _tick(instance, after.cursor, alerts).run_requests == []
    assert len(http_receiver.requests) == 1


def test_drift_sensor_needs_checks_and_resolves_against_its_job():
    with pytest.raises(ValueError, match="at least one asset check"):
        sensors.build_drift_sensor([], "retrain_models")
    assert drift_defs.resolve_sensor_def("drift_retraining_sensor").job_name == "retrain_models"


# --- run-failure alert -----------------------------------------------------------------------------------------------


@dg.op
def load_claims():
    return 1


@dg.op
def score_claims(rows):
    raise RuntimeError("model rejected the batch")


@dg.job
def nightly_scoring():
    score_claims(load_claims())


def test_run_failure_sensor_alerts_with_job_run_id_and_failed_steps(instance, http_receiver):
    result = nightly_scoring.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alerts": _slack(http_receiver)},
    ).for_run_failure()
    sensors.run_failure_alert(context)
    [(_, _, body)] = http_receiver.requests
    assert body["text"] == "[ERROR] Run of nightly_scoring failed"
    details = body["blocks"][1]["text"]["text"].splitlines()
    assert details == [
        "*job*: nightly_scoring",
        f"*run id*: {result.run_id}",
        "*steps*: score_claims",
        "*failed_steps*: 1",
    ]
    assert body["blocks"][2]["elements"][0]["text"] == f"<http://127.0.0.1:3000/runs/{result.run_id}|Open in Dagster>"
    assert "rejected the batch" not in json.dumps(body)  # error messages can carry data: they stay in Dagster


# --- landing sensor --------------------------------------------------------------------------------------------------


def _land(root, day: date, feeds=sensors.LANDING_FEEDS):
    for feed in feeds:
        folder = root / feed / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{feed}_{day:%Y%m%d}.csv").write_text("header\n")


def test_landing_sensor_requests_each_complete_day_once(tmp_path, instance):
    sensor = sensors.build_landing_sensor(str(tmp_path))
    defs = dg.Definitions(jobs=[jobs.daily_pipeline_job], sensors=[sensor])

    def tick(cursor):
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))

    _land(tmp_path, date(2026, 1, 2))
    _land(tmp_path, date(2026, 1, 3), feeds=sensors.LANDING_FEEDS[:3])  # one feed still missing
    (tmp_path / sensors.LANDING_FEEDS[3] / "2026-01-03").mkdir(parents=True)  # folder without files is not landed
    _land(tmp_path, date(2025, 12, 31))  # before the first partition
    today = datetime.now(UTC).date()
    _land(tmp_path, today)  # the day has not ended: not a partition yet

    first = tick(None)
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [("2026-01-02", "landing-2026-01-02")]
    again = tick(first.cursor)
    assert again.run_requests == []

    _land(tmp_path, date(2026, 1, 3), feeds=sensors.LANDING_FEEDS[3:])
    third = tick(again.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-01-03"]
    assert tick(third.cursor).run_requests == []
    assert sensors.complete_landing_days(tmp_path) == [date(2025, 12, 31), date(2026, 1, 2), date(2026, 1, 3), today]


def test_landing_sensor_cursor_keeps_only_the_lookback_window(tmp_path, instance):
    sensor = sensors.build_landing_sensor(str(tmp_path))
    defs = dg.Definitions(jobs=[jobs.daily_pipeline_job], sensors=[sensor])
    for offset in range(20):
        _land(tmp_path, date(2026, 1, 1) + timedelta(days=offset))
    result = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert len(result.run_requests) == 20
    assert (
        json.loads(result.cursor)[0] == (date(2026, 1, 20) - timedelta(days=sensors.LANDING_LOOKBACK_DAYS)).isoformat()
    )


# --- schedule time zone ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timezone, partition",
    [
        ("UTC", "2026-01-14"),
        ("America/New_York", "2026-01-14"),  # 02:00 = 07:00 UTC on the 15th
        ("Asia/Tokyo", "2026-01-13"),  # 02:00 = 17:00 UTC on the 14th: the 14th has not ended yet
    ],
)
def test_daily_schedule_runs_at_two_in_the_configured_time_zone_for_the_newest_ended_day(instance, timezone, partition):
    defs = build_definitions(load_settings({"SCHEDULE_TIMEZONE": timezone}))
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.execution_timezone == timezone and schedule.cron_schedule == "0 2 * * *"
    tick = datetime(2026, 1, 15, 2, 0, tzinfo=ZoneInfo(timezone))
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert (request.partition_key, request.run_key) == (partition, partition)


def test_schedule_time_zone_defaults_to_utc_and_is_validated():
    assert load_settings({}).schedule_timezone == "UTC"
    with pytest.raises(ConfigurationError, match="SCHEDULE_TIMEZONE='Mars/Olympus'"):
        load_settings({"SCHEDULE_TIMEZONE": "Mars/Olympus"})


def test_code_location_registers_the_failure_and_landing_sensors():
    defs = build_definitions(load_settings({}))
    assert defs.resolve_sensor_def("run_failure_alert")
    assert defs.resolve_sensor_def("landing_day_sensor").job_name == "daily_pipeline"
