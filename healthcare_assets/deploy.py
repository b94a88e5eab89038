"""Deployment chores for CI/CD: ship the project wheel to the workspace and check the secret scope.

    python -m healthcare_assets.deploy upload-wheel dist/healthcare_assets-0.1.0-py3-none-any.whl
    python -m healthcare_assets.deploy check-secrets
    python -m healthcare_assets.deploy run-gate <job>   (launches a job in Dagster+ and waits for it)

The environment comes from HEALTHCARE_ENV; the workspace from DATABRICKS_HOST /
DATABRICKS_TOKEN (read by the Databricks SDK). Job clusters install the wheel
from the environment's `wheel_uri` (a Unity Catalog volume), so upload it before
the code location. `run-gate` talks to the Dagster+ deployment named by
DAGSTER_CLOUD_ORGANIZATION and DAGSTER_CLOUD_DEPLOYMENT (or DAGSTER_GRAPHQL_URL)
with DAGSTER_CLOUD_API_TOKEN, and exits non-zero unless the run succeeds: a
release gate that really gates.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import dagster as dg
from databricks.sdk import WorkspaceClient

from healthcare_assets.resources.databricks import verify_secrets
from healthcare_assets.settings import load_settings


def upload_wheel(client: WorkspaceClient, wheel: Path, wheel_uri: str) -> str:
    """Uploads the wheel to its Unity Catalog volume path through the Files API."""
    if not wheel.is_file():
        raise SystemExit(f"{wheel} does not exist: build it first with `make wheel`")
    with wheel.open("rb") as handle:
        client.files.upload(wheel_uri, handle, overwrite=True)
    return wheel_uri


# A run in one of these states is over; only SUCCESS passes a gate.
FINISHED_STATES = ("SUCCESS", "FAILURE", "CANCELED")
CODE_LOCATION = "healthcare_assets"


def graphql_client(environ=os.environ):
    """The Dagster+ deployment's GraphQL API (or any Dagster webserver at DAGSTER_GRAPHQL_URL)."""
    from urllib.parse import urlparse

    from dagster_graphql import DagsterGraphQLClient

    url = environ.get("DAGSTER_GRAPHQL_URL") or (
        f"https://{environ['DAGSTER_CLOUD_ORGANIZATION']}.dagster.cloud/{environ['DAGSTER_CLOUD_DEPLOYMENT']}"
    )
    parsed = urlparse(url)
    token = environ.get("DAGSTER_CLOUD_API_TOKEN")
    return DagsterGraphQLClient(
        f"{parsed.hostname}{parsed.path.rstrip('/')}",
        port_number=parsed.port,
        use_https=parsed.scheme == "https",
        headers={"Dagster-Cloud-Api-Token": token} if token else None,
    )


def run_gate(client, job: str, timeout_seconds: float, poll_seconds: float) -> tuple[str, str]:
    """Launches `job` and waits for its run to finish: (run id, final status)."""
    run_id = client.submit_job_execution(job, repository_location_name=CODE_LOCATION, repository_name="__repository__")
    deadline = time.monotonic() + timeout_seconds
    while True:
        status = client.get_run_status(run_id).value
        if status in FINISHED_STATES:
            return run_id, status
        if time.monotonic() > deadline:
            return run_id, f"still {status} after {timeout_seconds:.0f}s"
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthcare_assets.deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload-wheel", help="upload the project wheel to the environment's wheel URI")
    upload.add_argument("wheel", type=Path)
    commands.add_parser("check-secrets", help="fail unless the environment's secret scope holds every key")
    gate = commands.add_parser("run-gate", help="launch a job in Dagster+, wait, fail unless the run succeeds")
    gate.add_argument("job")
    gate.add_argument("--timeout-seconds", type=float, default=3 * 60 * 60)
    gate.add_argument("--poll-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)

    if args.command == "run-gate":
        run_id, status = run_gate(graphql_client(), args.job, args.timeout_seconds, args.poll_seconds)
        print(f"{args.job}: run {run_id} {status}", file=sys.stdout if status == "SUCCESS" else sys.stderr)
        return 0 if status == "SUCCESS" else 1

    settings = load_settings()
    profile = settings.profile
    if profile.wheel_uri is None or profile.secret_scope is None:
        raise SystemExit(f"environment {settings.environment!r} is not deployed to Databricks")
    client = WorkspaceClient()
    if args.command == "upload-wheel":
        print(f"uploaded {args.wheel.name} to {upload_wheel(client, args.wheel, profile.wheel_uri)}")
    else:
        try:
            verify_secrets(client, profile.secret_scope, [s.key for s in profile.secrets], settings.environment)
        except dg.Failure as failure:
            print(failure.description, file=sys.stderr)
            return 1
        print(f"secret scope {profile.secret_scope} holds {[s.key for s in profile.secrets]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
