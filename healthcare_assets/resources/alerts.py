"""Alerts to Slack (incoming webhook), e-mail (SMTP) and PagerDuty (Events API v2); locally to the log.

Payloads are built only from an `Alert`: a title, a severity,
identifiers without spaces (asset, check, job, step keys), numbers, the run id and a link. The
`Alert` refuses text that looks like PHI (member ids, e-mail addresses, social
security numbers, member pseudonyms, long digit runs), so a payload cannot carry
a member's data. Delivery never raises into the pipeline: a channel that fails
is retried with exponential backoff a bounded number of times, then logged.
Secrets (webhook URL, routing key, SMTP credentials) come from environment
variables through `dg.EnvVar`, so the UI shows their names, never their values.
"""

import json
import re
import smtplib
import ssl
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import dagster as dg

from healthcare_assets.settings import AlertSettings

LOG, SLACK, EMAIL, PAGERDUTY = "log", "slack", "email", "pagerduty"
SEVERITIES = ("critical", "error", "warning", "info")  # PagerDuty's severities
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SOURCE = "healthcare_assets"

# text that could identify a member; checked in every string of an alert
_PHI_PATTERNS = {
    "member id": re.compile(r"MCD\d{9}", re.IGNORECASE),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
    "social security number": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "member pseudonym": re.compile(r"\b[0-9a-f]{64}\b", re.IGNORECASE),
}
_LONG_NUMBER = re.compile(r"(?<![\w-])\d{9,}(?![\w-])")
# identifiers are names, keys and partitions without spaces: no room for a person's full name
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_./:\-\[\]]+$")
_RUN_ID = re.compile(r"^[0-9a-f-]{1,64}$")


class PhiInAlertError(ValueError):
    """An alert field looks like it carries PHI; the message names the field, never the value."""


def _guard(name: str, text: str, *, long_numbers: bool = True) -> None:
    for kind, pattern in _PHI_PATTERNS.items():
        if pattern.search(text):
            raise PhiInAlertError(f"alert field {name!r} looks like it contains a {kind}; alerts must not carry PHI")
    if long_numbers and _LONG_NUMBER.search(text):
        raise PhiInAlertError(
            f"alert field {name!r} contains a long digit run (an identifier?); alerts must not carry PHI"
        )


@dataclass(frozen=True)
class Alert:
    title: str
    severity: str = "error"
    asset: str | None = None
    check: str | None = None
    job: str | None = None
    run_id: str | None = None
    link: str | None = None
    numbers: Mapping[str, float | int | bool] = field(default_factory=dict)
    steps: tuple[str, ...] = ()  # step keys, e.g. the failed steps of a run
    dedup_key: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if not self.title.strip():
            raise ValueError("an alert needs a title")
        _guard("title", self.title)
        for name in ("asset", "check", "job", "dedup_key"):
            value = getattr(self, name)
            if value is not None:
                if not _IDENTIFIER.match(value):
                    raise PhiInAlertError(
                        f"alert field {name!r} must be an identifier without spaces (asset/check/job key)"
                    )
                _guard(name, value)
        for step in self.steps:
            if not _IDENTIFIER.match(step):
                raise PhiInAlertError("alert steps must be step keys without spaces")
            _guard("steps", step)
        if self.run_id is not None and not _RUN_ID.match(self.run_id):
            raise PhiInAlertError("alert field 'run_id' must be a Dagster run id")
        if self.link is not None:
            _guard("link", self.link, long_numbers=False)
        for key, value in self.numbers.items():
            if not _IDENTIFIER.match(key):
                raise PhiInAlertError("alert number names must be identifiers without spaces")
            if not isinstance(value, int | float):  # bool is an int
                raise PhiInAlertError(f"alert number {key!r} must be a number, got {type(value).__name__}")

    @property
    def fields(self) -> dict[str, str]:
        """The identifying fields that are set, for every channel's body."""
        named = {"asset": self.asset, "check": self.check, "job": self.job, "run id": self.run_id}
        if self.steps:
            named["steps"] = ", ".join(self.steps)
        return {k: v for k, v in named.items() if v}

    @property
    def summary(self) -> str:
        return f"[{self.severity.upper()}] {self.title}"

    def key(self) -> str:
        """PagerDuty dedup key: repeated alerts about the same thing in the same run group into one incident."""
        if self.dedup_key:
            return self.dedup_key
        return ":".join(p for p in (SOURCE, self.job, self.asset, self.check, self.run_id) if p)


def _number_text(value: float | int | bool) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def slack_payload(alert: Alert) -> dict:
    details = [
        *(f"*{k}*: {v}" for k, v in alert.fields.items()),
        *(f"*{k}*: {_number_text(v)}" for k, v in alert.numbers.items()),
    ]
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": alert.summary[:150]}}]
    if details:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)}})
    if alert.link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{alert.link}|Open in Dagster>"}]})
    return {"text": alert.summary, "blocks": blocks}


def pagerduty_payload(alert: Alert, routing_key: str) -> dict:
    details: dict[str, object] = {**alert.fields, **alert.numbers}
    event: dict = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.key(),
        "payload": {
            "summary": alert.summary[:1024],
            "severity": alert.severity,
            "source": SOURCE,
            "custom_details": details,
        },
    }
    if alert.link:
        event["links"] = [{"href": alert.link, "text": "Open in Dagster"}]
    return event


def email_message(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = alert.summary
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    lines = [alert.title, "", *(f"{k}: {v}" for k, v in alert.fields.items())]
    lines += [f"{k}: {_number_text(v)}" for k, v in alert.numbers.items()]
    if alert.link:
        lines += ["", alert.link]
    message.set_content("\n".join(lines) + "\n")
    return message


class AlertsResource(dg.ConfigurableResource):
    """Sends an `Alert` to every configured channel; `log` only by default."""

    channels: list[str] = [LOG]
    slack_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: str | None = None
    email_from: str | None = None
    email_to: list[str] = []
    pagerduty_routing_key: str | None = None
    pagerduty_events_url: str = PAGERDUTY_EVENTS_URL
    max_attempts: int = 3
    backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0
    dagster_url: str | None = None  # base URL of the Dagster UI, for links in alerts

    def run_link(self, run_id: str) -> str | None:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}" if self.dagster_url else None

    def send(self, alert: Alert) -> dict[str, bool]:
        """Delivers to each channel; returns whether each one accepted the alert. Never raises."""
        log = dg.get_dagster_logger()
        delivered = {}
        for channel in self.channels:
            if channel == LOG:
                log.warning(f"alert {alert.summary} {alert.fields} {dict(alert.numbers)}")
                delivered[channel] = True
                continue
            delivered[channel] = self._with_retries(channel, alert)
        return delivered

    def _with_retries(self, channel: str, alert: Alert) -> bool:
        log = dg.get_dagster_logger()
        senders = {SLACK: self._send_slack, EMAIL: self._send_email, PAGERDUTY: self._send_pagerduty}
        if channel not in senders:
            log.error(f"alert channel {channel!r} is unknown; configured channels: {self.channels}")
            return False
        for attempt in range(1, self.max_attempts + 1):
            try:
                senders[channel](alert)
                return True
            # any failure of a channel is the channel's problem, never the pipeline's
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
            if attempt < self.max_attempts:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log.warning(
                    f"alert to {channel} failed (attempt {attempt}/{self.max_attempts}, {reason}); retrying in {delay:g} s"
                )
                time.sleep(delay)
        log.error(f"alert to {channel} not delivered after {self.max_attempts} attempts ({reason}): {alert.summary}")
        return False

    def _post_json(self, url: str, payload: dict) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("alert endpoint must be an http(s) URL")
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310  # nosec B310
            response.read()

    def _send_slack(self, alert: Alert) -> None:
        if not self.slack_webhook_url:
            raise ValueError("the Slack channel has no webhook URL (set SLACK_WEBHOOK_URL)")
        self._post_json(self.slack_webhook_url, slack_payload(alert))

    def _send_pagerduty(self, alert: Alert) -> None:
        if not self.pagerduty_routing_key:
            raise ValueError("the PagerDuty channel has no routing key (set PAGERDUTY_ROUTING_KEY)")
        self._post_json(self.pagerduty_events_url, pagerduty_payload(alert, self.pagerduty_routing_key))

    def _send_email(self, alert: Alert) -> None:
        if not (self.smtp_host and self.email_from and self.email_to):
            raise ValueError("the e-mail channel needs ALERT_SMTP_HOST, ALERT_EMAIL_FROM and ALERT_EMAIL_TO")
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
            if self.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.smtp_username and self.smtp_password:
                smtp.login(self.smtp_username, self.smtp_password)
            smtp.send_message(email_message(alert, self.email_from, list(self.email_to)))


def build_alerts(settings: AlertSettings) -> AlertsResource:
    """The alerts resource of an environment; secrets by environment-variable name, resolved by Dagster."""
    secrets: dict[str, Any] = {name: dg.EnvVar(variable) for name, variable in settings.secret_variables}
    return AlertsResource(
        channels=list(settings.channels),
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_starttls=settings.smtp_starttls,
        email_from=settings.email_from,
        email_to=list(settings.email_to),
        pagerduty_events_url=settings.pagerduty_events_url,
        dagster_url=settings.dagster_url,
        **secrets,
    )
