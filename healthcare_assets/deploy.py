"""Deployment chores for CI/CD: ship the project wheel to the workspace and check the secret scope.

    python -m healthcare_assets.deploy upload-wheel dist/healthcare_assets-0.1.0-py3-none-any.whl
    python -m healthcare_assets.deploy check-secrets
    python -m healthcare_assets.deploy wait-run <run id>   (a Dagster+ run; fails unless it succeeds)

The environment comes from HEALTHCARE_ENV; the workspace from DATABRICKS_HOST /
DATABRICKS_TOKEN (read by the Databricks SDK). Job clusters install the wheel
from the environment's `wheel_uri`, so upload it before the code location.
"""

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthcare_assets.deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload-wheel", help="upload the project wheel to the environment's wheel URI")
    upload.add_argument("wheel", type=Path)
    commands.add_parser("check-secrets", help="fail unless the environment's secret scope holds every key")
    args = parser.parse_args(argv)

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
