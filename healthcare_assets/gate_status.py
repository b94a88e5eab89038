"""The latest state of every gate (asset check), as the UI shows it, for the report and the gate summary.

A check's latest execution is one of: evaluated (passed, or failed at ERROR or WARN severity, with its
description and numbers), planned in a run that failed before evaluating it ("execution failed", the run's
first step failure says why), planned in a run that ended without evaluating it ("skipped"), planned in a run
still going ("in progress"), or never run.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from healthcare_assets.metadata import rounded

PASSED = "passed"
FAILED = "failed"  # an ERROR evaluation that did not pass
WARNING = "warning"  # a WARN evaluation that did not pass
EXECUTION_FAILED = "execution failed"
SKIPPED = "skipped"
IN_PROGRESS = "in progress"
NEVER_RUN = "never run"
# worst first: the order the report and the summary list gates in
STATUSES = (FAILED, EXECUTION_FAILED, WARNING, SKIPPED, IN_PROGRESS, NEVER_RUN, PASSED)
NEEDS_ATTENTION = (FAILED, EXECUTION_FAILED, WARNING)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class GateState:
    asset: str
    check: str
    blocking: bool
    status: str
    severity: str | None = None  # of the evaluation; None when there is none
    days: str | None = None  # the day or day range judged (None: every stored day or unpartitioned)
    reason: str | None = None
    numbers: dict[str, float | int] = field(default_factory=dict)
    run_id: str | None = None
    timestamp: float | None = None

    @property
    def name(self) -> str:
        return f"{self.asset} {self.check}"


def _numbers(metadata: Mapping[str, dg.MetadataValue]) -> dict[str, float | int]:
    """The check's numeric metadata (booleans aside), rounded for people."""
    numbers: dict[str, float | int] = {}
    for key, entry in metadata.items():
        value = entry.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        numbers[key] = rounded(value) if isinstance(value, float) else value
    return numbers


def tagged_day_range(tags: Mapping[str, str]) -> tuple[date, date] | None:
    """The first and last partition day a run targets, from its tags; None for a run without partitions."""
    start, end = (tags.get(tag) for tag in RANGE_TAGS)
    if start and end:
        return date.fromisoformat(start), date.fromisoformat(end)
    if PARTITION_TAG in tags:
        day = date.fromisoformat(tags[PARTITION_TAG])
        return day, day
    return None


def _run_days(run: dg.DagsterRun | None, partition: str | None) -> str | None:
    if partition is not None:
        return partition
    days = tagged_day_range(run.tags) if run is not None else None
    if days is None:
        return None
    start, end = days
    return start.isoformat() if start == end else f"{start.isoformat()}..{end.isoformat()}"


def _run_failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """Why a run failed, from its first step failure: the user's failure description, else the error's first line."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return "the run failed before evaluating it"
    event = records[0].event_log_entry.dagster_event
    failure = event.step_failure_data
    description = failure.user_failure_data.description if failure.user_failure_data else None
    if not description and failure.error is not None:
        description = failure.error.message.strip().splitlines()[0]
    return f"not evaluated: step {event.step_key} failed: {description}"


def gate_state(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, blocking: bool, record: AssetCheckExecutionRecord | None
) -> GateState:
    never_run = GateState(key.asset_key.to_user_string(), key.name, blocking, NEVER_RUN)
    if record is None:
        return never_run
    run = instance.get_run_by_id(record.run_id)
    executed = replace(
        never_run, days=_run_days(run, record.partition), run_id=record.run_id, timestamp=record.create_timestamp
    )
    if record.status == AssetCheckExecutionRecordStatus.PLANNED:
        if run is None:
            return replace(executed, status=SKIPPED, reason="its run was deleted")
        if not run.is_finished:
            return replace(executed, status=IN_PROGRESS)
        if run.status == dg.DagsterRunStatus.FAILURE:
            return replace(executed, status=EXECUTION_FAILED, reason=_run_failure(instance, run.run_id))
        return replace(executed, status=SKIPPED, reason="its run ended without evaluating it")
    evaluation = record.evaluation
    assert evaluation is not None  # an evaluated record carries its evaluation
    if evaluation.passed:
        status = PASSED
    else:
        status = WARNING if evaluation.severity == dg.AssetCheckSeverity.WARN else FAILED
    return replace(
        executed,
        status=status,
        severity=evaluation.severity.value,
        reason=evaluation.description,
        numbers=_numbers(evaluation.metadata),
    )


def latest_gate_states(
    instance: dg.DagsterInstance, checks: Iterable[tuple[dg.AssetCheckKey, bool]]
) -> list[GateState]:
    """The latest state of each (check key, blocking) pair, worst first, then by asset and name."""
    checks = list(checks)
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key([key for key, _ in checks])
    states = [gate_state(instance, key, blocking, records.get(key)) for key, blocking in checks]
    return sorted(states, key=lambda s: (STATUSES.index(s.status), s.asset, s.check))


def graph_checks(graph) -> list[tuple[dg.AssetCheckKey, bool]]:
    """Every check of an asset graph with whether it blocks."""
    return [(key, bool(graph.get_check_spec(key).blocking)) for key in graph.asset_check_keys]


def counts(states: Iterable[GateState]) -> dict[str, int]:
    """How many gates are in each status (every status listed, zeros included)."""
    states = list(states)
    return {status: sum(s.status == status for s in states) for status in STATUSES}
