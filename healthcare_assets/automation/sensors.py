"""Sensors: alerts on failed runs, the daily pipeline when a day's feeds have landed, retraining on drift."""

import json
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from healthcare_assets.automation.jobs import daily_pipeline_job, last_complete_day, model_retraining_job
from healthcare_assets.checks.governance import RETRAINING_GATES
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.partitions import PARTITIONS_START
from healthcare_assets.resources.alerts import Alert, AlertsResource

LANDING_FEEDS = tuple(SOURCES)
# a day whose last feed lands more than this many days after the newest complete day is not picked up again
LANDING_LOOKBACK_DAYS = 7


@dg.run_failure_sensor(
    name="run_failure_alert",
    description="Alerts (no PHI: job, run id, failed steps) whenever a run of this code location fails.",
    minimum_interval_seconds=60,
)
def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    run = context.dagster_run
    steps = sorted({event.step_key for event in context.get_step_failure_events() if event.step_key})
    alerts.send(
        Alert(
            title=f"Run of {run.job_name} failed",
            severity="error",
            job=run.job_name,
            run_id=run.run_id,
            steps=tuple(steps),
            numbers={"failed_steps": len(steps)},
            link=alerts.run_link(run.run_id),
        )
    )


# Lists a folder as (name, is_directory) pairs, [] when it does not exist: the local disk, or a Unity Catalog
# volume through the Databricks Files API (`resources.databricks.volume_directory_lister`) when deployed.
DirectoryLister = Callable[[str], list[tuple[str, bool]]]


def local_directory(path: str) -> list[tuple[str, bool]]:
    folder = Path(path)
    return [(child.name, child.is_dir()) for child in folder.iterdir()] if folder.is_dir() else []


def _landed_days(list_directory: DirectoryLister, folder: str, skip: Collection[date]) -> set[date]:
    """Days under a feed folder whose day folder holds at least one (non-hidden) file; days in `skip` are not
    looked into (each look is one Files API call when deployed)."""
    days = set()
    for name, is_directory in list_directory(folder):
        try:
            day = date.fromisoformat(name)
        except ValueError:
            continue
        if not is_directory or day in skip:
            continue
        if any(not is_dir and not child.startswith(".") for child, is_dir in list_directory(f"{folder}/{name}")):
            days.add(day)
    return days


def complete_landing_days(
    landing_root: str | Path,
    feeds: Sequence[str] = LANDING_FEEDS,
    list_directory: DirectoryLister = local_directory,
    skip: Collection[date] = (),
) -> list[date]:
    """Days (not in `skip`) for which every feed has landed under `landing_root/<feed>/<yyyy-mm-dd>/`."""
    root = str(landing_root).rstrip("/")
    per_feed = [_landed_days(list_directory, f"{root}/{feed}", skip) for feed in feeds]
    return sorted(set.intersection(*per_feed)) if per_feed else []


def build_landing_sensor(
    landing_root: str, name: str = "landing_day_sensor", list_directory: DirectoryLister = local_directory
) -> dg.SensorDefinition:
    """Requests `daily_pipeline` once per day whose four feeds are all present (run key = the day)."""

    @dg.sensor(
        name=name,
        job=daily_pipeline_job,
        minimum_interval_seconds=300,
        description=(
            "Starts the daily pipeline for a day as soon as all four feeds of that day are in the landing folder "
            "(once per day; days that have not ended yet wait)."
        ),
    )
    def landing_day_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        requested = set(json.loads(context.cursor)) if context.cursor else set()
        newest_partition = last_complete_day(datetime.now(UTC))
        seen = {date.fromisoformat(d) for d in requested}
        ready = [
            day
            for day in complete_landing_days(landing_root, list_directory=list_directory, skip=seen)
            if PARTITIONS_START <= day <= newest_partition
        ]
        requests = [dg.RunRequest(run_key=f"landing-{day.isoformat()}", partition_key=day.isoformat()) for day in ready]
        requested |= {day.isoformat() for day in ready}
        # the cursor remembers the requested days of the lookback window only, so it stays small
        horizon = (
            (max(map(date.fromisoformat, requested)) - timedelta(days=LANDING_LOOKBACK_DAYS)) if requested else None
        )
        kept = sorted(d for d in requested if horizon is None or date.fromisoformat(d) >= horizon)
        if ready:
            context.log.info(f"complete landing days: {', '.join(d.isoformat() for d in ready)}")
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(kept),
            skip_reason=None if requests else "no new complete landing day",
        )

    return landing_day_sensor


def _numbers(metadata: dict) -> dict[str, float | int]:
    """Numeric metadata of a check evaluation (PSI, thresholds, counts); text is left out of alerts."""
    numbers = {}
    for key, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, int | float) and key.replace("_", "").isalnum():
            numbers[key.lower()] = raw
    return numbers


def build_drift_sensor(
    check_keys: Sequence[dg.AssetCheckKey],
    retrain_job_name: str,
    name: str = "drift_retraining_sensor",
    minimum_interval_seconds: int = 300,
    history_limit: int = 50,
) -> dg.SensorDefinition:
    """A sensor that requests ONE `retrain_job_name` run per failed ERROR evaluation of the given checks, and alerts.

    The cursor holds the storage id up to which every evaluation is handled (and the ids handled beyond it while an
    earlier evaluation is still in progress), so every failure fires exactly once. On its first tick the sensor looks
    only at the latest evaluation of each check (switching it on does not replay history).
    """
    keys = list(check_keys)
    if not keys:
        raise ValueError("build_drift_sensor needs at least one asset check key")

    @dg.sensor(
        name=name,
        job_name=retrain_job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        description=(
            f"Requests {retrain_job_name} once for each failed ERROR evaluation of "
            f"{', '.join(k.to_user_string() for k in keys)}, and sends an alert."
        ),
    )
    def drift_sensor(context: dg.SensorEvaluationContext, alerts: AlertsResource) -> dg.SensorResult:
        instance = context.instance
        state = json.loads(context.cursor) if context.cursor else None
        after = state["after"] if state else 0
        handled = set(state["handled"]) if state else set()
        seen, pending, failures = [after], [], []
        for key in keys:
            # the first tick looks at the latest evaluation only: switching the sensor on does not replay history
            for record in instance.event_log_storage.get_asset_check_execution_history(
                key, limit=history_limit if state else 1
            ):
                if record.id <= after or record.id in handled:
                    continue
                evaluation = record.event.asset_check_evaluation if record.event else None
                if evaluation is None:
                    run = instance.get_run_by_id(record.run_id)
                    if run is None or not run.is_finished:
                        pending.append(record.id)  # still running: look again on the next tick
                        continue
                seen.append(record.id)
                handled.add(record.id)
                if (
                    evaluation is not None
                    and not evaluation.passed
                    and evaluation.severity == dg.AssetCheckSeverity.ERROR
                ):
                    failures.append((record, evaluation))
        # never move past an evaluation still in progress; ids handled beyond that point are remembered instead
        after = min(pending) - 1 if pending else max(seen)
        cursor = json.dumps({"after": after, "handled": sorted(i for i in handled if i > after)})
        requests = []
        for record, evaluation in sorted(failures, key=lambda item: item[0].id):
            check = record.key.to_user_string()
            requests.append(
                dg.RunRequest(
                    run_key=f"retrain-{check}-{record.id}",
                    tags={
                        "healthcare/trigger": "drift",
                        "healthcare/failed_check": check,
                        "healthcare/check_run_id": record.run_id,
                    },
                )
            )
            alerts.send(
                Alert(
                    title=f"Drift gate {record.key.name} failed: retraining requested ({retrain_job_name})",
                    severity="critical",
                    asset=record.key.asset_key.to_user_string(),
                    check=record.key.name,
                    job=retrain_job_name,
                    run_id=record.run_id,
                    numbers=_numbers(dict(evaluation.metadata)),
                    link=alerts.run_link(record.run_id),
                )
            )
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor,
            skip_reason=None if requests else "no new failed drift evaluation",
        )

    return drift_sensor


def build_sensors(landing_root: str, list_directory: DirectoryLister = local_directory) -> list[dg.SensorDefinition]:
    """The sensors every environment has, including retraining on a failed composite drift gate."""
    return [
        run_failure_alert,
        build_landing_sensor(landing_root, list_directory=list_directory),
        build_drift_sensor(RETRAINING_GATES, retrain_job_name=model_retraining_job.name),
    ]
