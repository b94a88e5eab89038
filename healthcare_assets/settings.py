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
        schedule_timezone=_schedule_timezone(environ),
        alerts=load_alert_settings(environ),
    )
