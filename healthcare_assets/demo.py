"""`make run`: the whole graph for the demo window through the named jobs, then the report.

`python -m healthcare_assets.demo --start 2026-01-01 --end 2026-01-14` runs DEMO_JOBS in order (ingestion, model
training, serving the champions, scoring, drift monitoring, governance reports, as the schedules order them), the daily ones over the
window as one run each. Each run is recorded as the UI records a run it launches: against the code location of
workspace.yaml, so the overview timeline, the jobs pages and the runs page show it (a run started by
`dagster job execute` carries no code location and is left off the timeline). Every job runs even after one fails;
the report then lists what failed and why, and the exit status is 1.
"""

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_shared.yaml_utils import load_yaml_from_path

from healthcare_assets import report
from healthcare_assets.gate_status import RANGE_TAGS

DEMO_JOBS = (
    "daily_pipeline",
    "risk_model_training",
    "fraud_model_training",
    "model_serving",
    "daily_scoring",
    "drift_monitoring",
    "governance_reports",
)
MODULE = "healthcare_assets.definitions"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a module's Definitions
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"
# progress lines only on the console; every event is still in the run's log in the UI
INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def workspace_location() -> tuple[str, Path]:
    """The code location name and working directory `make ui` loads the definitions module with."""
    workspace = load_yaml_from_path(str(WORKSPACE))
    assert isinstance(workspace, dict), f"{WORKSPACE} is not a mapping"
    entries = workspace["load_from"]
    module = next(e["python_module"] for e in entries if e["python_module"]["module_name"] == MODULE)
    return module["location_name"], (WORKSPACE.parent / module.get("working_directory", ".")).resolve()


def job_origin(job_name: str, location: str, working_directory: Path) -> RemoteJobOrigin:
    target = LoadableTargetOrigin(
        executable_path=sys.executable, module_name=MODULE, working_directory=str(working_directory)
    )
    code_location = ManagedGrpcPythonEnvCodeLocationOrigin(target, location_name=location)
    return RemoteJobOrigin(RemoteRepositoryOrigin(code_location, REPOSITORY), job_name)


def run_jobs(instance: dg.DagsterInstance, start: date, end: date, jobs: Sequence[str] = DEMO_JOBS) -> list[str]:
    """Runs `jobs` in order, the partitioned ones over start..end; returns the names of those that failed."""
    location, working_directory = workspace_location()
    repository = ReconstructableRepository.for_module(MODULE, "defs", str(working_directory))
    failed = []
    for name in jobs:
        print(f"== {name}", flush=True)
        job = repository.get_reconstructable_job(name)
        definition = job.get_definition()
        window = dict(zip(RANGE_TAGS, (start.isoformat(), end.isoformat()), strict=True))
        tags = {} if definition.partitions_def is None else window
        run = instance.create_run_for_job(
            job_def=definition,
            run_config=INFO_LOGS,
            tags=tags,
            remote_job_origin=job_origin(name, location, working_directory),
            job_code_origin=job.get_python_origin(),
        )
        if not execute_run(job, run, instance).success:
            failed.append(name)
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument(
        "--jobs", nargs="+", choices=DEMO_JOBS, default=DEMO_JOBS, help="only these (still in the order above)"
    )
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    with dg.DagsterInstance.get() as instance:
        failed = run_jobs(instance, args.start, args.end, [job for job in DEMO_JOBS if job in args.jobs])
    status = report.main()
    if failed:
        print(f"failed job(s): {', '.join(failed)} (the report above says why; so does the Runs page of make ui)")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
