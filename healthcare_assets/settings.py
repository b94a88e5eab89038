"""Everything that differs between environments, read from environment variables in one place.

`get_environment()` is the only environment detector in the project; the rest of
the code receives a `Settings` object or resources built from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "dev", "staging", "prod")
ENGINES = ("sail", "classic", "databricks")
PSEUDONYMISATION_KEY_VARIABLE = "PSEUDONYMISATION_KEY"

# Development-only pseudonymisation key: used in `local` when none is set, refused everywhere else.
LOCAL_DEVELOPMENT_KEY = "local-development-key-not-for-real-data"


class ConfigurationError(ValueError):
    """A setting is missing or invalid; the message says which variable to set."""


def get_environment(environ: Mapping[str, str] | None = None) -> str:
    """local | dev | staging | prod, from HEALTHCARE_ENV or the Dagster+ deployment name."""
    environ = os.environ if environ is None else environ
    name = (environ.get("HEALTHCARE_ENV") or environ.get("DAGSTER_CLOUD_DEPLOYMENT_NAME") or "local").strip().lower()
    if name not in ENVIRONMENTS:
        raise ConfigurationError(f"HEALTHCARE_ENV={name!r} is not one of {', '.join(ENVIRONMENTS)}")
    return name


def pseudonymisation_key(
    environment: str, variable: str = PSEUDONYMISATION_KEY_VARIABLE, environ: Mapping[str, str] | None = None
) -> bytes:
    """The HMAC key for identifiers; deployed environments refuse to run without one."""
    environ = os.environ if environ is None else environ
    key = environ.get(variable, "")
    if key:
        return key.encode("utf-8")
    if environment == "local":
        return LOCAL_DEVELOPMENT_KEY.encode("utf-8")
    raise ConfigurationError(
        f"{variable} is not set: environment {environment!r} needs a pseudonymisation key "
        "(keep it in the Databricks secret scope and expose it to the run as this variable)"
    )


@dataclass(frozen=True)
class Settings:
    environment: str
    spark_engine: str
    lakehouse_root: str
    landing_root: str
    catalog: str | None
    mlflow_tracking_uri: str
    mlflow_registry_uri: str | None = None

    @property
    def is_local(self) -> bool:
        return self.environment == "local"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    environment = get_environment(environ)
    default_engine = "sail" if environment == "local" else "databricks"
    engine = environ.get("SPARK_ENGINE", default_engine).strip().lower()
    if engine not in ENGINES:
        raise ConfigurationError(f"SPARK_ENGINE={engine!r} is not one of {', '.join(ENGINES)}")
    if environment == "local":
        root = str(Path(environ.get("LAKEHOUSE_ROOT", ".lakehouse")).resolve())
        landing = str(Path(environ.get("LANDING_ROOT", str(Path(root) / "landing"))).resolve())
        catalog = None
        # next to the lakehouse (./.mlflow by default): one SQLite store with tracking and registry
        mlflow_dir = Path(root).parent / ".mlflow"
        tracking = environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}")
        registry = environ.get("MLFLOW_REGISTRY_URI") or None
    else:
        root = environ.get("LAKEHOUSE_ROOT", f"/Volumes/healthcare_{environment}/lakehouse")
        landing = environ.get("LANDING_ROOT", f"/Volumes/healthcare_{environment}/landing/feeds")
        catalog = environ.get("HEALTHCARE_CATALOG", f"healthcare_{environment}")
        tracking = environ.get("MLFLOW_TRACKING_URI", "databricks")
        registry = environ.get("MLFLOW_REGISTRY_URI", "databricks-uc")
        pseudonymisation_key(environment, environ=environ)  # fail at load time, not in the middle of a run
    return Settings(
        environment=environment,
        spark_engine=engine,
        lakehouse_root=root,
        landing_root=landing,
        catalog=catalog,
        mlflow_tracking_uri=tracking,
        mlflow_registry_uri=registry,
    )
