"""Everything that differs between environments, read from environment variables in one place.

`get_environment()` is the only environment detector in the project; the rest of
the code receives a `Settings` object or resources built from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from healthcare_assets.environments import (
    DATABRICKS_STEP_LAUNCHER,
    HOST_VARIABLE,
    LAKEHOUSE_VOLUME,
    LANDING_VOLUME,
    MODEL_SCHEMA,
    PROFILES,
    RUNTIME_VARIABLE,
    TOKEN_VARIABLE,
    EnvironmentProfile,
)

ENVIRONMENTS = ("local", "dev", "staging", "prod")
ENGINES = ("sail", "classic", "databricks")
PSEUDONYMISATION_KEY_VARIABLE = "PSEUDONYMISATION_KEY"

# Development-only pseudonymisation key: used in `local` when none is set, refused everywhere else.
LOCAL_DEVELOPMENT_KEY = "local-development-key-not-for-real-data"


ALERT_CHANNELS = ("log", "slack", "email", "pagerduty")
# alert secrets: resource field -> environment variable holding it (Dagster resolves it; values are never shown)
ALERT_SECRET_VARIABLES = {
    "slack_webhook_url": "SLACK_WEBHOOK_URL",
    "pagerduty_routing_key": "PAGERDUTY_ROUTING_KEY",
    "smtp_username": "ALERT_SMTP_USERNAME",
    "smtp_password": "ALERT_SMTP_PASSWORD",  # nosec B105 (a variable name, not a password)
}
_CHANNEL_SECRETS = {
    "slack": (("slack_webhook_url", True),),
    "pagerduty": (("pagerduty_routing_key", True),),
    "email": (("smtp_username", False), ("smtp_password", False)),
}


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
class AlertSettings:
    """Where alerts go; secrets appear only as (resource field, environment variable name) pairs."""

    channels: tuple[str, ...] = ("log",)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    email_from: str | None = None
    email_to: tuple[str, ...] = ()
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    secret_variables: tuple[tuple[str, str], ...] = ()
    dagster_url: str | None = None  # the Dagster UI, for links in alerts


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _port(value: str) -> int:
    if not value.strip().isdigit():
        raise ConfigurationError(f"ALERT_SMTP_PORT={value!r} is not a port number")
    return int(value)


def load_alert_settings(environ: Mapping[str, str]) -> AlertSettings:
    channels = tuple(c.lower() for c in _csv(environ.get("ALERT_CHANNELS", "log"))) or ("log",)
    unknown = [c for c in channels if c not in ALERT_CHANNELS]
    if unknown:
        raise ConfigurationError(
            f"ALERT_CHANNELS has unknown channel(s) {unknown}; use any of {', '.join(ALERT_CHANNELS)}"
        )
    secrets = []
    for channel in channels:
        for name, required in _CHANNEL_SECRETS.get(channel, ()):
            variable = ALERT_SECRET_VARIABLES[name]
            if environ.get(variable):
                secrets.append((name, variable))
            elif required:
                raise ConfigurationError(f"ALERT_CHANNELS includes {channel} but {variable} is not set")
    alerts = AlertSettings(
        channels=channels,
        smtp_host=environ.get("ALERT_SMTP_HOST") or None,
        smtp_port=_port(environ.get("ALERT_SMTP_PORT", "587")),
        smtp_starttls=environ.get("ALERT_SMTP_STARTTLS", "true").strip().lower() not in ("0", "false", "no"),
        email_from=environ.get("ALERT_EMAIL_FROM") or None,
        email_to=_csv(environ.get("ALERT_EMAIL_TO", "")),
        pagerduty_events_url=environ.get("PAGERDUTY_EVENTS_URL", AlertSettings.pagerduty_events_url),
        secret_variables=tuple(secrets),
        dagster_url=environ.get("DAGSTER_WEBSERVER_URL") or None,
    )
    if "email" in channels and not (alerts.smtp_host and alerts.email_from and alerts.email_to):
        raise ConfigurationError(
            "ALERT_CHANNELS includes email: set ALERT_SMTP_HOST, ALERT_EMAIL_FROM and ALERT_EMAIL_TO"
        )
    return alerts


def _schedule_timezone(environ: Mapping[str, str]) -> str:
    name = environ.get("SCHEDULE_TIMEZONE", "UTC").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigurationError(
            f"SCHEDULE_TIMEZONE={name!r} is not an IANA time zone (e.g. UTC, America/New_York)"
        ) from error
    return name


@dataclass(frozen=True)
class Settings:
    environment: str
    spark_engine: str
    lakehouse_root: str
    landing_root: str
    catalog: str | None
    mlflow_tracking_uri: str
    mlflow_registry_uri: str | None = None
    schedule_timezone: str = "UTC"
    alerts: AlertSettings = AlertSettings()
    # catalog names, cluster, secret scope, launcher and executor of the environment
    profile: EnvironmentProfile = PROFILES["local"]
    # True inside a step's Databricks run (the runtime sets DATABRICKS_RUNTIME_VERSION)
    on_databricks_cluster: bool = False
    # run steps on this all-purpose cluster instead of a new job cluster per step
    existing_cluster_id: str | None = None
    # how often the orchestrator polls a step's Databricks run, and how long the run may take
    databricks_poll_seconds: float = 10.0
    step_timeout_seconds: int = PROFILES["local"].step_timeout_seconds

    @property
    def model_namespace(self) -> str | None:
        """`catalog.ml` when models go to a Unity Catalog registry (three-level names), else None."""
        if self.catalog and (self.mlflow_registry_uri or "").startswith("databricks-uc"):
            return f"{self.catalog}.{MODEL_SCHEMA}"
        return None

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    @property
    def launches_steps_on_databricks(self) -> bool:
        """Spark steps go to Databricks from the orchestrator; on the cluster itself they run in-process."""
        return self.profile.launcher == DATABRICKS_STEP_LAUNCHER and not self.on_databricks_cluster


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    environment = get_environment(environ)
    profile = PROFILES[environment]
    on_cluster = bool(environ.get(RUNTIME_VARIABLE))
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
        # empty: tables addressed by path under LAKEHOUSE_ROOT (a workspace without Unity Catalog)
        catalog = environ.get("HEALTHCARE_CATALOG", profile.catalog) or None
        # files live in Unity Catalog volumes (the DBFS root is disabled on current workspaces)
        volumes_catalog = catalog or str(profile.catalog)
        root = environ.get("LAKEHOUSE_ROOT", LAKEHOUSE_VOLUME.path(volumes_catalog))
        landing = environ.get("LANDING_ROOT", LANDING_VOLUME.path(volumes_catalog))
        tracking = environ.get("MLFLOW_TRACKING_URI", profile.mlflow_tracking_uri or "databricks")
        registry = environ.get("MLFLOW_REGISTRY_URI", profile.mlflow_registry_uri or "databricks-uc")
        # fail at load time, not in the middle of a run
        if on_cluster or profile.launcher != DATABRICKS_STEP_LAUNCHER:
            # where steps run: on Databricks the key arrives from the secret scope
            pseudonymisation_key(environment, environ=environ)
        else:
            _require_workspace(environment, environ)
    return Settings(
        environment=environment,
        spark_engine=engine,
        lakehouse_root=root,
        landing_root=landing,
        catalog=catalog,
        mlflow_tracking_uri=tracking,
        mlflow_registry_uri=registry,
        schedule_timezone=_schedule_timezone(environ),
        alerts=load_alert_settings(environ),
        profile=profile,
        on_databricks_cluster=on_cluster,
        existing_cluster_id=environ.get("HEALTHCARE_CLUSTER_ID") or None,
        databricks_poll_seconds=_number(environ, "DATABRICKS_POLL_SECONDS", 10.0),
        step_timeout_seconds=int(_number(environ, "HEALTHCARE_STEP_TIMEOUT_SECONDS", profile.step_timeout_seconds)),
    )


def _number(environ: Mapping[str, str], variable: str, default: float) -> float:
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{variable}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigurationError(f"{variable}={raw!r} must be positive")
    return value


def _require_workspace(environment: str, environ: Mapping[str, str]) -> None:
    """The orchestrator of a deployed environment submits steps to Databricks: host and token must be set."""
    host = environ.get(HOST_VARIABLE, "").strip()
    if not host:
        raise ConfigurationError(
            f"{HOST_VARIABLE} is not set: environment {environment!r} runs its Spark steps on Databricks; "
            "set it to the workspace URL, e.g. https://<workspace>.cloud.databricks.com"
        )
    if not host.startswith(("https://", "http://")):
        raise ConfigurationError(f"{HOST_VARIABLE} must be the workspace URL starting with https://")
    if not environ.get(TOKEN_VARIABLE, "").strip():
        raise ConfigurationError(
            f"{TOKEN_VARIABLE} is not set: environment {environment!r} needs a Databricks token of the "
            "pipeline's service principal (a Dagster+ secret or a GitHub environment secret)"
        )
