"""Alerts delivered to real local receivers: an HTTP server emulating Slack and PagerDuty, an SMTP server."""

import logging
from email import message_from_bytes

import pytest
from aiosmtpd.smtp import AuthResult

from assets_tests import receivers
from healthcare_assets.resources.alerts import Alert, AlertsResource, PhiInAlertError, build_alerts
from healthcare_assets.settings import ConfigurationError, load_settings

http_receiver = receivers.http_receiver  # fixture
_free_port = receivers.free_port
RUN_ID = "3f2c9a4e-1b7d-4c55-9e0a-5d1f7b2e8c61"
ROUTING_KEY = "R0UT1NGKEY-test-value"


def _authenticate(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == b"alerts" and auth_data.password == b"smtp-secret")


@pytest.fixture
def smtp_server():
    with receivers.serving_smtp(authenticator=_authenticate, auth_require_tls=False) as server:
        yield server


def _alert(**overrides) -> Alert:
    values = dict(
        title="PSI of claim_amount above 0.2 on 2026-01-14",
        severity="critical",
        asset="gold/claim_features",
        check="psi_within_limits",
        job="daily_pipeline",
        run_id=RUN_ID,
        link=f"http://127.0.0.1:3000/runs/{RUN_ID}",
        numbers={"psi": 0.2731, "threshold": 0.2, "rows": 1200},
    )
    return Alert(**{**values, **overrides})


def test_slack_receives_text_and_blocks(http_receiver):
    url = f"http://127.0.0.1:{http_receiver.server_port}/services/T000/B000/XXXX"
    alerts = AlertsResource(channels=["slack"], slack_webhook_url=url, backoff_seconds=0.01)
    assert alerts.send(_alert()) == {"slack": True}
    [(path, content_type, body)] = http_receiver.requests
    assert path == "/services/T000/B000/XXXX" and content_type == "application/json"
    assert body["text"] == "[CRITICAL] PSI of claim_amount above 0.2 on 2026-01-14"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": body["text"]}
    section = body["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert section["text"].splitlines() == [
        "*asset*: gold/claim_features",
        "*check*: psi_within_limits",
        "*job*: daily_pipeline",
        f"*run id*: {RUN_ID}",
        "*psi*: 0.2731",
        "*threshold*: 0.2",
        "*rows*: 1200",
    ]
    assert body["blocks"][2]["elements"][0]["text"] == f"<http://127.0.0.1:3000/runs/{RUN_ID}|Open in Dagster>"


def test_pagerduty_receives_an_events_v2_trigger(http_receiver):
    alerts = AlertsResource(
        channels=["pagerduty"],
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=f"http://127.0.0.1:{http_receiver.server_port}/v2/enqueue",
    )
    assert alerts.send(_alert()) == {"pagerduty": True}
    [(path, _, body)] = http_receiver.requests
    assert path == "/v2/enqueue"
    assert body == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": f"healthcare_assets:daily_pipeline:gold/claim_features:psi_within_limits:{RUN_ID}",
        "payload": {
            "summary": "[CRITICAL] PSI of claim_amount above 0.2 on 2026-01-14",
            "severity": "critical",
            "source": "healthcare_assets",
            "custom_details": {
                "asset": "gold/claim_features",
                "check": "psi_within_limits",
                "job": "daily_pipeline",
                "run id": RUN_ID,
                "psi": 0.2731,
                "threshold": 0.2,
                "rows": 1200,
            },
        },
        "links": [{"href": f"http://127.0.0.1:3000/runs/{RUN_ID}", "text": "Open in Dagster"}],
    }


def test_email_arrives_over_smtp_with_login(smtp_server):
    controller, mailbox = smtp_server
    alerts = AlertsResource(
        channels=["email"],
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_starttls=False,
        smtp_username="alerts",
        smtp_password="smtp-secret",
        email_from="mlops@example.org",
        email_to=["oncall@example.org", "fraud-ml@example.org"],
    )
    assert alerts.send(_alert(severity="warning")) == {"email": True}
    [(sender, recipients, authenticated, content)] = mailbox.messages
    assert sender == "mlops@example.org" and recipients == ["oncall@example.org", "fraud-ml@example.org"]
    assert authenticated
    message = message_from_bytes(content)
    assert message["Subject"] == "[WARNING] PSI of claim_amount above 0.2 on 2026-01-14"
    body = message.get_payload()
    assert "check: psi_within_limits" in body and f"run id: {RUN_ID}" in body and "psi: 0.2731" in body


def test_a_failing_endpoint_is_retried_with_backoff_then_succeeds(http_receiver):
    http_receiver.failures_first = 2
    url = f"http://127.0.0.1:{http_receiver.server_port}/hook"
    alerts = AlertsResource(channels=["slack"], slack_webhook_url=url, max_attempts=3, backoff_seconds=0.01)
    assert alerts.send(_alert()) == {"slack": True}
    assert len(http_receiver.requests) == 3


def test_attempts_are_bounded_and_an_unreachable_channel_never_raises(http_receiver, caplog):
    http_receiver.failures_first = 100
    dead = f"http://127.0.0.1:{_free_port()}/v2/enqueue"
    alerts = AlertsResource(
        channels=["log", "slack", "pagerduty", "email"],
        slack_webhook_url=f"http://127.0.0.1:{http_receiver.server_port}/hook",
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=dead,
        smtp_host="127.0.0.1",
        smtp_port=_free_port(),
        smtp_starttls=False,
        email_from="mlops@example.org",
        email_to=["oncall@example.org"],
        max_attempts=2,
        backoff_seconds=0.01,
        timeout_seconds=2,
    )
    with caplog.at_level(logging.WARNING):
        assert alerts.send(_alert()) == {"log": True, "slack": False, "pagerduty": False, "email": False}
    assert len(http_receiver.requests) == 2  # bounded: max_attempts, no more
    assert "alert to pagerduty not delivered after 2 attempts" in caplog.text
    assert "alert to email not delivered after 2 attempts" in caplog.text
    assert ROUTING_KEY not in caplog.text and "/hook" not in caplog.text  # secrets never logged


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"title": "claim of MCD000012345 looks duplicated"}, "member id"),
        ({"title": "sent to jane.doe@example.org"}, "e-mail address"),
        ({"title": "member 123-45-6789"}, "social security number"),
        ({"title": f"member {'a1' * 32}"}, "member pseudonym"),
        ({"title": "member 4711081512 flagged"}, "long digit run"),
        ({"asset": "Jane Doe"}, "identifier without spaces"),
        ({"steps": ("John Smith",)}, "step keys without spaces"),
        ({"run_id": "Jane Doe"}, "run id"),
        ({"numbers": {"member": "Jane Doe"}}, "must be a number"),
    ],
)
def test_alerts_refuse_values_that_look_like_phi(overrides, message):
    with pytest.raises(PhiInAlertError, match=message) as error:
        _alert(**overrides)
    assert "Jane" not in str(error.value) and "MCD000012345" not in str(error.value)


def test_settings_select_channels_and_name_the_secret_variables_without_reading_values():
    settings = load_settings(
        {"ALERT_CHANNELS": "log, slack,pagerduty", "SLACK_WEBHOOK_URL": "https://hooks", "PAGERDUTY_ROUTING_KEY": "k"}
    )
    assert settings.alerts.channels == ("log", "slack", "pagerduty")
    assert dict(settings.alerts.secret_variables) == {
        "slack_webhook_url": "SLACK_WEBHOOK_URL",
        "pagerduty_routing_key": "PAGERDUTY_ROUTING_KEY",
    }
    assert build_alerts(load_settings({}).alerts).channels == ["log"]  # local default: log only
    with pytest.raises(ConfigurationError, match="SLACK_WEBHOOK_URL is not set"):
        load_settings({"ALERT_CHANNELS": "slack"})
    with pytest.raises(ConfigurationError, match="ALERT_SMTP_HOST"):
        load_settings({"ALERT_CHANNELS": "email"})
    with pytest.raises(ConfigurationError, match="unknown channel"):
        load_settings({"ALERT_CHANNELS": "teams"})
