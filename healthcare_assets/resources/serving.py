"""Real-time scoring endpoints: Databricks Model Serving when deployed, MLflow's scoring server locally.

`deploy` puts a registered model's champion (all traffic) and challenger (no traffic, queryable by its served
name) behind one endpoint; `query` scores records through it. Deployed, endpoints are Databricks Model Serving
endpoints created or updated through databricks-sdk (`serving_endpoints.create` / `update_config`), scaled to
zero when idle. Locally the endpoint is MLflow's own pyfunc scoring server (the app `mlflow models serve
--env-manager local` runs) on a free 127.0.0.1 port, inside this process, for as long as the resource is up.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass

import dagster as dg
from pydantic import PrivateAttr

LOCAL = "local"
DATABRICKS = "databricks"
CHAMPION_ROUTE = "champion"
CHALLENGER_ROUTE = "challenger"


@dataclass(frozen=True)
class ServedModel:
    registered_name: str
    champion_version: str
    challenger_version: str | None
    champion_uri: str  # models:/<name>@champion, what the local server loads


def endpoint_name(model: str, environment: str) -> str:
    """`fraud-detector-dev`: serving endpoint names allow letters, digits, dashes and underscores."""
    return f"{model}-{environment}"


class LocalScoringServer:
    """MLflow's pyfunc scoring app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, model_uri: str):
        import mlflow.pyfunc
        import uvicorn
        from mlflow.pyfunc import scoring_server

        app = scoring_server.init(mlflow.pyfunc.load_model(model_uri))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local scoring server for {model_uri} did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def invoke(self, records: list[dict]) -> list:
        request = urllib.request.Request(  # noqa: S310 (loopback URL built here)
            f"{self.url}/invocations",
            data=json.dumps({"dataframe_records": records}).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  # nosec B310
            return json.load(response)["predictions"]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ServingResource(dg.ConfigurableResource):
    """Where models serve: `local` (MLflow scoring server on 127.0.0.1) or `databricks` (Model Serving)."""

    mode: str = LOCAL
    environment: str = "local"
    workload_size: str = "Small"
    _local: dict[str, LocalScoringServer] = PrivateAttr(default_factory=dict)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for server in self._local.values():
            server.stop()
        self._local.clear()

    def deploy(self, endpoint: str, model: ServedModel) -> str:
        """Serves `model` at `endpoint` (created, or its config replaced); returns the endpoint's URL."""
        if self.mode == LOCAL:
            previous = self._local.pop(endpoint, None)
            if previous is not None:
                previous.stop()
            self._local[endpoint] = LocalScoringServer(model.champion_uri)
            return f"{self._local[endpoint].url}/invocations"
        return self._deploy_on_databricks(endpoint, model)

    def query(self, endpoint: str, records: list[dict]) -> list:
        if self.mode == LOCAL:
            if endpoint not in self._local:
                raise dg.Failure(f"serving endpoint {endpoint} is not deployed in this process")
            return self._local[endpoint].invoke(records)
        from databricks.sdk import WorkspaceClient

        response = WorkspaceClient().serving_endpoints.query(endpoint, dataframe_records=records)
        return list(response.predictions or [])

    def _deploy_on_databricks(self, endpoint: str, model: ServedModel) -> str:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.errors import NotFound
        from databricks.sdk.service.serving import EndpointCoreConfigInput, Route, ServedEntityInput, TrafficConfig

        entities = [ServedEntityInput(**self._entity(CHAMPION_ROUTE, model.registered_name, model.champion_version))]
        routes = [Route(served_model_name=CHAMPION_ROUTE, traffic_percentage=100)]
        if model.challenger_version and model.challenger_version != model.champion_version:
            entities.append(
                ServedEntityInput(**self._entity(CHALLENGER_ROUTE, model.registered_name, model.challenger_version))
            )
            routes.append(Route(served_model_name=CHALLENGER_ROUTE, traffic_percentage=0))
        traffic = TrafficConfig(routes=routes)
        client = WorkspaceClient()
        try:
            client.serving_endpoints.get(endpoint)
        except NotFound:
            client.serving_endpoints.create_and_wait(
                endpoint, config=EndpointCoreConfigInput(served_entities=entities, traffic_config=traffic)
            )
        else:
            client.serving_endpoints.update_config_and_wait(endpoint, served_entities=entities, traffic_config=traffic)
        return f"{client.config.host}/serving-endpoints/{endpoint}/invocations"

    def _entity(self, name: str, registered_name: str, version: str) -> dict:
        return {
            "name": name,
            "entity_name": registered_name,
            "entity_version": version,
            "workload_size": self.workload_size,
            "scale_to_zero_enabled": True,
        }
