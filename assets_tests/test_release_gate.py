"""The release gate launches its job through the Dagster GraphQL API, waits for the run and fails unless it succeeded.

The API is a small HTTP server on 127.0.0.1 speaking the GraphQL shapes of the
launch mutation and the run-status query; the client is dagster-graphql's own.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from healthcare_assets import deploy


class DagsterApi:
    """Answers `launchPipelineExecution` with a run id and the status query with `statuses` one by one."""

    def __init__(self, statuses: list[str]):
        self.statuses = list(statuses)
        self.launched: list[dict] = []
        self.headers: list[str | None] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.headers.append(self.headers.get("Dagster-Cloud-Api-Token"))
                if "launchPipelineExecution" in body["query"]:
                    api.launched.append(body["variables"]["executionParams"])
                    data = {"launchPipelineExecution": {"__typename": "LaunchRunSuccess", "run": {"runId": "r-1"}}}
                else:
                    status = api.statuses.pop(0) if len(api.statuses) > 1 else api.statuses[0]
                    data = {"pipelineRunOrError": {"__typename": "Run", "status": status}}
                payload = json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api(request, monkeypatch):
    server = DagsterApi(request.param)
    monkeypatch.setenv("DAGSTER_GRAPHQL_URL", server.url)
    monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", "user-token-for-the-test")  # pragma: allowlist secret
    yield server
    server.server.shutdown()


@pytest.mark.parametrize("api", [["QUEUED", "STARTED", "SUCCESS"]], indirect=True)
def test_a_gate_waits_for_its_run_and_passes_when_it_succeeds(api, capsys):
    assert deploy.main(["run-gate", "data_quality_checks", "--poll-seconds", "0.01"]) == 0
    (launched,) = api.launched
    assert launched["selector"]["pipelineName"] == "data_quality_checks"
    assert launched["selector"]["repositoryLocationName"] == "healthcare_assets"
    assert api.statuses == ["SUCCESS"]  # polled through QUEUED and STARTED
    assert set(api.headers) == {"user-token-for-the-test"}
    assert "run r-1 SUCCESS" in capsys.readouterr().out


@pytest.mark.parametrize("api", [["STARTED", "FAILURE"], ["CANCELED"]], indirect=True)
def test_a_gate_whose_run_fails_fails_the_workflow_step(api, capsys):
    assert deploy.main(["run-gate", "unity_catalog_grants", "--poll-seconds", "0.01"]) == 1
    assert "unity_catalog_grants: run r-1" in capsys.readouterr().err


@pytest.mark.parametrize("api", [["STARTED"]], indirect=True)
def test_a_gate_that_never_finishes_fails_at_its_timeout(api, capsys):
    assert deploy.main(["run-gate", "data_quality_checks", "--poll-seconds", "0.01", "--timeout-seconds", "0.1"]) == 1
    assert "still STARTED after" in capsys.readouterr().err
