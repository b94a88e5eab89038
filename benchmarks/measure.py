"""Measuring a run: wall time and peak RSS of a subprocess tree, per-step durations from the Dagster event log."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.2


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as stat:
                # the command name (2nd field) may contain spaces; fields after its ')' are fixed
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children = _children_by_parent()
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += _rss_bytes(pid)
        pending.extend(children.get(pid, ()))
    return total


@dataclass
class ProcessResult:
    returncode: int
    wall_seconds: float
    peak_tree_rss_bytes: int  # sampled from /proc every SAMPLE_SECONDS: the whole process tree
    max_rss_bytes: int  # getrusage of the child (wait4): the largest single process, exact
    log_tail: str = ""


def _copy_output(stream, log, echo) -> None:
    for line in stream:
        log.write(line)
        if echo is not None:
            echo(line.decode(errors="replace").rstrip())


def run_measured(
    args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None, echo=None
) -> ProcessResult:
    """Runs a command, sampling its process tree's RSS; output goes to `log_path` and, line by line, to `echo`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    done = threading.Event()
    with open(log_path, "wb", buffering=0) as log:  # unbuffered: the log can be followed while it runs
        started = time.perf_counter()
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_bytes(process.pid))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        copier = threading.Thread(target=_copy_output, args=(process.stdout, log, echo), daemon=True)
        sampler.start()
        copier.start()
        # wait4, not Popen.wait: it also returns the child's resource usage (ru_maxrss)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
        copier.join()
    tail = log_path.read_text(errors="replace")[-3000:] if process.returncode else ""
    return ProcessResult(process.returncode, wall, peak, usage.ru_maxrss * 1024, tail)


@dataclass
class StepTiming:
    step: str
    seconds: float
    assets: list[str] = field(default_factory=list)  # assets the step materialised
    rows: int | None = None  # rows it wrote (dagster/row_count, or `records` for landing files)
    kind: str = "asset"  # asset | check


@dataclass
class RunTimings:
    run_id: str
    run_seconds: float  # RUN_START -> RUN_SUCCESS: the run itself, without process start-up and shut-down
    steps: list[StepTiming]


def run_timings(dagster_home: Path, run_id: str | None = None) -> RunTimings:
    """Per-step durations (STEP_START -> STEP_SUCCESS) and row counts of a run (default: the latest) in an instance.

    A run over a range of partitions records one materialisation per partition with the same
    metadata, so rows are counted once per asset.
    """
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))
    try:
        if run_id is None:
            run_id = instance.get_runs(limit=1)[0].run_id
        starts: dict[str, float] = {}
        steps: dict[str, StepTiming] = {}
        rows_by_step: dict[str, dict[str, int]] = {}
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            timing = steps.setdefault(entry.step_key, StepTiming(entry.step_key, 0.0, kind="check"))
            rows = rows_by_step.setdefault(entry.step_key, {})
            kind = event.event_type_value
            if kind == "STEP_START":
                starts[entry.step_key] = entry.timestamp
            elif kind == "STEP_SUCCESS":
                timing.seconds = entry.timestamp - starts[entry.step_key]
            elif kind == "ASSET_MATERIALIZATION":
                materialization = event.event_specific_data.materialization
                timing.kind = "asset"
                asset = materialization.asset_key.to_user_string()
                if asset not in timing.assets:
                    timing.assets.append(asset)
                metadata = materialization.metadata
                count = metadata.get("dagster/row_count") or metadata.get("records")
                if count is not None:
                    rows[asset] = int(count.value)
        for key, timing in steps.items():
            timing.rows = sum(rows_by_step[key].values()) if rows_by_step[key] else None
        stats = instance.get_run_stats(run_id)
        return RunTimings(
            run_id, stats.end_time - stats.start_time, [timing for key, timing in steps.items() if key in starts]
        )
    finally:
        instance.dispose()


def python_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("PYTHONPATH", None)
    return env


PYTHON = sys.executable
DAGSTER = str(Path(sys.executable).with_name("dagster"))
