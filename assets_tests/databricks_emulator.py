"""A local Databricks workspace on 127.0.0.1 that speaks the REST API the dagster-databricks client uses.

Endpoints (paths and JSON shapes of the Databricks REST API; jobs under 2.0, 2.1 and 2.2):

* DBFS 2.0: ``create``, ``add-block``, ``close``, ``put``, ``read``, ``get-status``, ``list``,
  ``mkdirs``, ``delete``; files live under ``<root>/dbfs``.
* Jobs: ``runs/submit``, ``runs/get``, ``runs/get-output``, ``runs/cancel``, ``runs/list``.
* Secrets 2.0: ``scopes/create``, ``scopes/list``, ``put``, ``list``, ``get``, ``delete``.
* Clusters 2.1: ``get``, ``list`` (the job clusters the runs created).
* Files 2.0 (Unity Catalog volumes): ``PUT/GET/HEAD/DELETE fs/files/Volumes/...`` and
  ``PUT/GET/HEAD/DELETE fs/directories/Volumes/...``; volume files live under ``<root>/volumes``.
* Serving endpoints 2.0: ``POST serving-endpoints``, ``GET serving-endpoints/<name>``,
  ``PUT serving-endpoints/<name>/config``, and ``POST serving-endpoints/<name>/invocations``
  (``dataframe_records``), answered by the served entity with 100 % of the traffic loaded from
  the MLflow registry at ``model_registry_uri`` (the workspace's Unity Catalog registry stand-in).

Faithful mode (``faithful=True``), what a current workspace enforces and the
default mode lets through: libraries in the DBFS root are refused (disabled from
DBR 15.1), every JSON request body must survive a round trip through
databricks-sdk's own dataclass for it (``from_dict`` / ``as_dict``: unknown or
misspelt fields fail), and each cluster process runs in its own mount namespace
where ``<root>/volumes`` is ``/Volumes`` -- the orchestrator (the test process)
has no ``/Volumes`` of its own, so anything it tried to read there directly fails.

A submitted ``spark_python_task`` runs as a real process of this machine's
Python (the emulated cluster): the runtime's globals ``dbutils`` (secrets read
from this workspace) and ``sc`` (None: no JVM) are provided, ``/dbfs/`` paths in
the task parameters are mapped to ``<root>/dbfs``, the runtime's environment
variables are set (``DATABRICKS_RUNTIME_VERSION``, ``DATABRICKS_HOST`` /
``DATABRICKS_TOKEN`` like the runtime's native authentication, the cluster's
``spark_env_vars``), and the cluster's Spark is an embedded Sail server that
``SparkSession.builder.getOrCreate()`` reaches through ``SPARK_REMOTE``.

Like Databricks, a run fails before its task starts when the job cluster
cannot be created (unknown node type, or a scripted termination reason) or a
``whl``/``jar`` library is missing from DBFS; a run stays PENDING for
``cluster_start_seconds``; ``timeout_seconds`` ends a run as TIMEDOUT and
``runs/cancel`` as CANCELED (killing the task's process).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

# Node types the emulated cloud offers (AWS names, as in the environment profiles).
NODE_TYPES = ("i3.xlarge", "i3.2xlarge", "m5d.large", "m5d.xlarge")

# Runs inside the emulated cluster's process: the Databricks runtime's globals, then the task's file.
_RUNTIME_BOOTSTRAP = r"""
import base64, json, os, runpy, sys, tempfile, types, urllib.error, urllib.parse, urllib.request
from pathlib import Path

from pysail.spark import SparkConnectServer

os.environ.setdefault("RUST_LOG", "error")
os.environ["SAIL_EXECUTION__CHECKPOINT__PATH"] = Path(tempfile.mkdtemp(prefix="cluster-checkpoints-")).as_uri()
_server = SparkConnectServer("127.0.0.1", 0)
_server.start(background=True)
_host, _port = _server.listening_address
os.environ["SPARK_REMOTE"] = f"sc://{_host}:{_port}"


class _Secrets:
    def get(self, scope, key):
        query = urllib.parse.urlencode({"scope": scope, "key": key})
        request = urllib.request.Request(
            f"{os.environ['DATABRICKS_HOST']}/api/2.0/secrets/get?{query}",
            headers={"Authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"},
        )
        try:
            with urllib.request.urlopen(request) as response:
                return base64.b64decode(json.load(response)["value"]).decode("utf-8")
        except urllib.error.HTTPError as error:
            raise RuntimeError(json.load(error)["message"]) from None


dbutils = types.SimpleNamespace(secrets=_Secrets())
main_file = sys.argv[1]
sys.argv = [main_file, *sys.argv[2:]]
try:
    runpy.run_path(main_file, init_globals={"dbutils": dbutils, "sc": None}, run_name="__main__")
finally:
    _server.stop()
"""


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


@dataclass
class EmulatedRun:
    run_id: int
    job_id: int
    run_name: str | None
    task: dict[str, Any]
    timeout_seconds: int | None
    cluster_id: str
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0
    error: str | None = None
    error_trace: str | None = None
    logs: str = ""
    process: subprocess.Popen | None = None
    cancel_requested: bool = False

    def state(self) -> dict[str, Any]:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state


class DatabricksEmulator:
    """The workspace: start it, point DATABRICKS_HOST at `url`, inspect `requests`, `runs`, `dbfs_root`."""

    def __init__(
        self,
        root: Path,
        token: str,
        python: str = sys.executable,
        cluster_start_seconds: float = 0.0,
        cluster_termination_reason: str | None = None,
        cluster_environment: dict[str, str] | None = None,
        faithful: bool = False,
    ):
        self.root = Path(root)
        self.dbfs_root = self.root / "dbfs"
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
        self.volumes_root = self.root / "volumes"
        self.volumes_root.mkdir(parents=True, exist_ok=True)
        self.faithful = faithful
        self.endpoints: dict[str, dict[str, Any]] = {}
        # the MLflow registry the serving endpoints load their entities from (set it before invoking one)
        self.model_registry_uri: str | None = None
        self._served_models: dict[tuple[str, str], Any] = {}
        self.token = token
        self.python = python
        # how long a new job cluster takes to start (runs stay PENDING meanwhile)
        self.cluster_start_seconds = cluster_start_seconds
        # when set, job clusters terminate while starting with this reason (e.g. a cloud capacity failure)
        self.cluster_termination_reason = cluster_termination_reason
        # variables every emulated cluster process gets in addition to the runtime's own
        self.cluster_environment = dict(cluster_environment or {})
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.runs: dict[int, EmulatedRun] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}
        self._handles: dict[int, tuple[Path, bytearray]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> DatabricksEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for run in self.runs.values():
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
        self._server.shutdown()
        self._server.server_close()

    # -- helpers for tests -------------------------------------------------------------
    def create_scope(self, scope: str) -> None:
        self.secrets.setdefault(scope, {})

    def local_path(self, path: str) -> Path:
        """`dbfs:/x`, `dbfs:///x`, `/dbfs/x` or `/x` -> the file under the emulated DBFS root."""
        for prefix in ("dbfs:", "/dbfs/"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        relative = Path("/" + path.lstrip("/")).resolve().relative_to("/")
        return self.dbfs_root / relative

    def volume_path(self, path: str) -> Path:
        """`/Volumes/<catalog>/<schema>/<volume>/...` -> the file under the emulated volumes root."""
        if not path.startswith("/Volumes/"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{path} is not a Unity Catalog volume path")
        relative = Path("/" + path.removeprefix("/Volumes/")).resolve().relative_to("/")
        return self.volumes_root / relative

    def submitted(self, path_suffix: str) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if path.endswith(path_suffix)]

    # -- HTTP ------------------------------------------------------------------------
    def _handler_class(self):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _raw(self, status: int, payload: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                headers = {"Content-Length": str(len(payload)), **(headers or {})}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                if self.headers.get("Authorization") != f"Bearer {emulator.token}":
                    self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
                    return
                if url.path.startswith("/api/2.0/fs/"):
                    length = int(self.headers.get("Content-Length") or 0)
                    data = self.rfile.read(length) if length else b""
                    query = {key: values[-1] for key, values in parse_qs(url.query).items()}
                    with emulator._lock:
                        emulator.requests.append((method, url.path, query))
                    try:
                        status, payload, headers = emulator._files(method, unquote(url.path), query, data)
                    except ApiError as error:
                        if method == "HEAD":
                            self._raw(error.status)
                        else:
                            self._reply(error.status, {"error_code": error.error_code, "message": error.message})
                        return
                    self._raw(status, payload, headers)
                    return
                if method == "GET":
                    body = {key: values[-1] for key, values in parse_qs(url.query).items()}
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                with emulator._lock:
                    emulator.requests.append((method, url.path, body))
                try:
                    self._reply(200, emulator._dispatch(method, url.path, body))
                except ApiError as error:
                    self._reply(error.status, {"error_code": error.error_code, "message": error.message})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_PATCH(self):
                self._handle("PATCH")

            def do_DELETE(self):
                self._handle("DELETE")

            def do_HEAD(self):
                self._handle("HEAD")

        return Handler

    def _dispatch(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")  # api, version, service, ...
        if len(parts) >= 3 and parts[:3] == ["api", "2.0", "serving-endpoints"]:
            return self._serving(method, parts[3:], body)
        if method == "POST" and len(parts) == 3 and parts[0] == "serving-endpoints" and parts[2] == "invocations":
            return self._invoke(parts[1], body)
        if len(parts) < 4 or parts[0] != "api":
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        service, operation = parts[2], "/".join(parts[3:])
        handler = getattr(self, f"_{service}_{operation.replace('/', '_').replace('-', '_')}", None)
        if handler is None or (service == "jobs" and parts[1] not in ("2.0", "2.1", "2.2")):
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        return handler(body)

    # -- Files (Unity Catalog volumes) --------------------------------------------------
    def _files(self, method: str, path: str, query: dict[str, str], data: bytes) -> tuple[int, bytes, dict]:
        kind, _, volume_path = path.removeprefix("/api/2.0/fs/").partition("/")
        local = self.volume_path("/" + volume_path)
        missing = ApiError(404, "NOT_FOUND", f"The file or directory /{volume_path} does not exist.")
        if kind == "files":
            if method == "PUT":
                if local.exists() and query.get("overwrite", "true").lower() == "false":
                    raise ApiError(409, "ALREADY_EXISTS", f"The file /{volume_path} already exists.")
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
                return 204, b"", {}
            if method == "POST":
                raise ApiError(501, "NOT_IMPLEMENTED", "multipart uploads are not emulated (files under 5 MiB only)")
            if not local.is_file():
                raise missing
            if method == "DELETE":
                local.unlink()
                return 204, b"", {}
            content = local.read_bytes()
            headers = {"Content-Type": "application/octet-stream", "last-modified": "Thu, 03 Dec 2026 00:00:00 GMT"}
            return 200, content if method == "GET" else b"", {**headers, "Content-Length": str(len(content))}
        if kind == "directories":
            if method == "PUT":
                local.mkdir(parents=True, exist_ok=True)
                return 204, b"", {}
            if not local.is_dir():
                raise missing
            if method == "DELETE":
                if any(local.iterdir()):
                    raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory /{volume_path} is not empty.")
                local.rmdir()
                return 204, b"", {}
            if method == "HEAD":
                return 200, b"", {}
            contents = [
                {
                    "path": f"/{volume_path.rstrip('/')}/{child.name}",
                    "name": child.name,
                    "is_directory": child.is_dir(),
                    **({} if child.is_dir() else {"file_size": child.stat().st_size}),
                }
                for child in sorted(local.iterdir())
            ]
            return 200, json.dumps({"contents": contents}).encode(), {"Content-Type": "application/json"}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    # -- serving endpoints ---------------------------------------------------------------
    def _serving(self, method: str, parts: list[str], body: dict[str, Any]) -> dict[str, Any]:
        from databricks.sdk.service.serving import EndpointCoreConfigInput

        if method == "POST" and not parts:
            self._validated(EndpointCoreConfigInput, body.get("config", {}))
            if body["name"] in self.endpoints:
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Endpoint with name '{body['name']}' already exists.")
            self.endpoints[body["name"]] = self._endpoint_json(body["name"], body["config"])
            return self.endpoints[body["name"]]
        if not parts or parts[0] not in self.endpoints:
            name = parts[0] if parts else ""
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Serving endpoint '{name}' does not exist.")
        name = parts[0]
        if method == "GET" and len(parts) == 1:
            return self.endpoints[name]
        if method == "PUT" and parts[1:] == ["config"]:
            self._validated(EndpointCoreConfigInput, {"name": name, **body})
            self.endpoints[name] = self._endpoint_json(name, body)
            return self.endpoints[name]
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} serving-endpoints/{'/'.join(parts)}'")

    def _invoke(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Scores `dataframe_records` with the entity the traffic config routes 100 % to, as Model Serving does."""
        import mlflow.pyfunc
        import pandas as pd

        if name not in self.endpoints:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Serving endpoint '{name}' does not exist.")
        if set(body) != {"dataframe_records"} or not isinstance(body["dataframe_records"], list):
            raise ApiError(400, "BAD_REQUEST", "this endpoint takes a JSON object with dataframe_records only")
        config = self.endpoints[name]["config"]
        route = next(r for r in config["traffic_config"]["routes"] if r["traffic_percentage"] == 100)
        entity = next(e for e in config["served_entities"] if e["name"] == route["served_model_name"])
        key = (entity["entity_name"], entity["entity_version"])
        if key not in self._served_models:
            mlflow.set_registry_uri(self.model_registry_uri or "")
            self._served_models[key] = mlflow.pyfunc.load_model(f"models:/{key[0]}/{key[1]}")
        predictions = self._served_models[key].predict(pd.DataFrame(body["dataframe_records"]))
        frame = predictions if isinstance(predictions, pd.DataFrame) else pd.DataFrame({"prediction": predictions})
        return {"predictions": frame.astype(object).where(frame.notna(), None).to_dict("records")}

    def _endpoint_json(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "id": f"emulated-{name}",
            "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": {**config, "config_version": 1},
        }

    def _validated(self, request_class: Any, body: dict[str, Any]) -> None:
        """Faithful mode: the body is exactly what databricks-sdk's dataclass for it reads and writes back."""
        if not self.faithful:
            return
        normalised = request_class.from_dict(body).as_dict()
        if _without_empty(normalised) != _without_empty(body):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"request body does not match {request_class.__name__}: sent {sorted(body)}, "
                f"understood {sorted(normalised)}",
            )

    # -- DBFS --------------------------------------------------------------------------
    def _existing(self, path: str) -> Path:
        local = self.local_path(path)
        if not local.exists():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.")
        return local

    def _dbfs_create(self, body):
        local = self.local_path(body["path"])
        if local.exists() and not body.get("overwrite"):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {body['path']}.")
        handle = next(self._ids)
        self._handles[handle] = (local, bytearray())
        return {"handle": handle}

    def _dbfs_add_block(self, body):
        if body["handle"] not in self._handles:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Handle {body['handle']} does not exist.")
        self._handles[body["handle"]][1].extend(base64.b64decode(body["data"]))
        return {}

    def _dbfs_close(self, body):
        local, data = self._handles.pop(body["handle"])
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(bytes(data))
        return {}

    def _dbfs_put(self, body):
        local = self.local_path(body["path"])
        if local.exists() and not body.get("overwrite"):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {body['path']}.")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(base64.b64decode(body.get("contents", "")))
        return {}

    def _dbfs_read(self, body):
        local = self._existing(body["path"])
        if local.is_dir():
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cannot read a directory: {body['path']}")
        offset, length = int(body.get("offset", 0)), int(body.get("length", 1024 * 1024))
        with local.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode("ascii")}

    def _status(self, local: Path) -> dict[str, Any]:
        path = "/" + str(local.relative_to(self.dbfs_root))
        size = 0 if local.is_dir() else local.stat().st_size
        return {"path": path, "is_dir": local.is_dir(), "file_size": size}

    def _dbfs_get_status(self, body):
        return self._status(self._existing(body["path"]))

    def _dbfs_list(self, body):
        local = self._existing(body["path"])
        return {"files": [self._status(child) for child in sorted(local.iterdir())] if local.is_dir() else []}

    def _dbfs_mkdirs(self, body):
        self.local_path(body["path"]).mkdir(parents=True, exist_ok=True)
        return {}

    def _dbfs_delete(self, body):
        local = self.local_path(body["path"])
        if local.is_dir():
            if any(local.iterdir()) and not body.get("recursive"):
                raise ApiError(400, "IO_ERROR", f"Directory {body['path']} is not empty.")
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
        return {}

    # -- secrets -----------------------------------------------------------------------
    def _scope(self, name: str) -> dict[str, bytes]:
        if name not in self.secrets:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {name} does not exist!")
        return self.secrets[name]

    def _secrets_scopes_create(self, body):
        if body["scope"] in self.secrets:
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Scope {body['scope']} already exists!")
        self.create_scope(body["scope"])
        return {}

    def _secrets_scopes_list(self, body):
        return {"scopes": [{"name": name, "backend_type": "DATABRICKS"} for name in sorted(self.secrets)]}

    def _secrets_put(self, body):
        value = (
            body["string_value"].encode("utf-8") if "string_value" in body else base64.b64decode(body["bytes_value"])
        )
        self._scope(body["scope"])[body["key"]] = value
        return {}

    def _secrets_list(self, body):
        scope = self._scope(body["scope"])
        return {"secrets": [{"key": key, "last_updated_timestamp": 0} for key in sorted(scope)]}

    def _secrets_get(self, body):
        scope = self._scope(body["scope"])
        if body["key"] not in scope:
            raise ApiError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Secret does not exist with scope: {body['scope']} and key: {body['key']}",
            )
        return {"key": body["key"], "value": base64.b64encode(scope[body["key"]]).decode("ascii")}

    def _secrets_delete(self, body):
        self._scope(body["scope"]).pop(body["key"], None)
        return {}

    # -- clusters ----------------------------------------------------------------------
    def _clusters_get(self, body):
        if body["cluster_id"] not in self.clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {body['cluster_id']} does not exist")
        return self.clusters[body["cluster_id"]]

    def _clusters_list(self, body):
        return {"clusters": list(self.clusters.values())}

    # -- jobs --------------------------------------------------------------------------
    def _jobs_runs_submit(self, body):
        from databricks.sdk.service.jobs import SubmitTask

        tasks = body.get("tasks") or [body]  # 2.0 accepted a single task at the top level
        for task in body.get("tasks", []):
            self._validated(SubmitTask, task)
        if len(tasks) != 1:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "the emulator runs single-task submissions")
        task = tasks[0]
        if "spark_python_task" not in task:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "the emulator runs spark_python_task only")
        if bool(task.get("new_cluster")) == bool(task.get("existing_cluster_id")):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Exactly one of new_cluster or existing_cluster_id")
        run_id = next(self._ids)
        cluster_id = task.get("existing_cluster_id") or f"1126-{run_id:06d}-emulated"
        if task.get("new_cluster"):
            self.clusters[cluster_id] = {
                "cluster_id": cluster_id,
                "state": "PENDING",
                "cluster_source": "JOB",
                **task["new_cluster"],
            }
        elif cluster_id not in self.clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {cluster_id} does not exist")
        run = EmulatedRun(
            run_id=run_id,
            job_id=next(self._ids),
            run_name=body.get("run_name"),
            task=task,
            timeout_seconds=body.get("timeout_seconds"),
            cluster_id=cluster_id,
        )
        self.runs[run_id] = run
        threading.Thread(target=self._execute, args=(run,), daemon=True).start()
        return {"run_id": run_id}

    def _run(self, body) -> EmulatedRun:
        run_id = int(body["run_id"])
        if run_id not in self.runs:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        return self.runs[run_id]

    def _run_json(self, run: EmulatedRun) -> dict[str, Any]:
        task = {
            "run_id": run.run_id * 10,
            "task_key": run.task.get("task_key"),
            "state": run.state(),
            "cluster_instance": {"cluster_id": run.cluster_id},
            "start_time": run.start_time,
            **{key: value for key, value in run.task.items() if key != "task_key"},
        }
        return {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "run_name": run.run_name,
            "run_type": "SUBMIT_RUN",
            "state": run.state(),
            "start_time": run.start_time,
            "end_time": run.end_time,
            "run_page_url": f"{self.url}/?o=0#job/{run.job_id}/run/{run.run_id}",
            "cluster_instance": {"cluster_id": run.cluster_id},
            "tasks": [task],
        }

    def _jobs_runs_get(self, body):
        return self._run_json(self._run(body))

    def _jobs_runs_list(self, body):
        return {"runs": [self._run_json(run) for run in self.runs.values()], "has_more": False}

    def _jobs_runs_get_output(self, body):
        run = self._run(body)
        output: dict[str, Any] = {"metadata": self._run_json(run), "logs": run.logs[-5000:]}
        if run.error:
            output["error"] = run.error
            output["error_trace"] = run.error_trace
        return output

    def _jobs_runs_cancel(self, body):
        run = self._run(body)
        run.cancel_requested = True
        if run.process is not None and run.process.poll() is None:
            run.process.kill()
        if run.life_cycle_state in ("PENDING", "RUNNING"):
            self._finish(run, "TERMINATED", "CANCELED", "Run cancelled.")
        return {}

    # -- run execution -----------------------------------------------------------------
    def _finish(self, run: EmulatedRun, life_cycle: str, result: str | None, message: str) -> None:
        if run.life_cycle_state in ("TERMINATED", "INTERNAL_ERROR", "SKIPPED"):
            return
        run.life_cycle_state, run.result_state, run.state_message = life_cycle, result, message
        run.end_time = int(time.time() * 1000)
        if run.task.get("new_cluster"):
            self.clusters[run.cluster_id]["state"] = "TERMINATED"

    def _execute(self, run: EmulatedRun) -> None:
        new_cluster = run.task.get("new_cluster") or {}
        deadline = time.time() + self.cluster_start_seconds
        while time.time() < deadline and not run.cancel_requested:
            time.sleep(0.05)
        if run.cancel_requested:
            return
        if new_cluster:
            reason = self.cluster_termination_reason
            if new_cluster.get("node_type_id") not in NODE_TYPES:
                reason = (
                    "INVALID_ARGUMENT (CLIENT_ERROR). Parameters: databricks_error_message:Node type "
                    f"{new_cluster.get('node_type_id')} is not supported"
                )
            if reason:
                self._finish(
                    run, "INTERNAL_ERROR", "FAILED", f"Cluster '{run.cluster_id}' was terminated. Reason: {reason}."
                )
                return
            self.clusters[run.cluster_id]["state"] = "RUNNING"
        for library in run.task.get("libraries", []):
            for kind in ("whl", "jar", "egg"):
                if self.faithful and kind in library and library[kind].startswith(("dbfs:", "/dbfs/")):
                    self._finish(
                        run,
                        "INTERNAL_ERROR",
                        "FAILED",
                        f'Library installation failed for library due to user error for {kind}: "{library[kind]}". '
                        "Error messages: Libraries stored in the DBFS root are disabled on this workspace; "
                        "store them in a Unity Catalog volume or the workspace files",
                    )
                    return
                if (
                    kind in library
                    and library[kind].startswith("/Volumes/")
                    and not self.volume_path(library[kind]).is_file()
                ):
                    self._finish(
                        run,
                        "INTERNAL_ERROR",
                        "FAILED",
                        f'Library installation failed for library due to user error for {kind}: "{library[kind]}". '
                        f"Error messages: {library[kind]} does not exist",
                    )
                    return
                if (
                    kind in library
                    and library[kind].startswith("dbfs:")
                    and not self.local_path(library[kind]).exists()
                ):
                    self._finish(
                        run,
                        "INTERNAL_ERROR",
                        "FAILED",
                        f'Library installation failed for library due to user error for {kind}: "{library[kind]}". '
                        f"Error messages: java.io.FileNotFoundException: {library[kind]} does not exist",
                    )
                    return
        run.life_cycle_state, run.state_message = "RUNNING", "In run"
        self._run_python_task(run, new_cluster)

    def _run_python_task(self, run: EmulatedRun, new_cluster: dict[str, Any]) -> None:
        python_task = run.task["spark_python_task"]
        python_file = python_task["python_file"]
        # in faithful mode the cluster sees /Volumes itself; otherwise volume paths are mapped like /dbfs/ ones
        if python_file.startswith("/Volumes/"):
            main_file = Path(python_file) if self.faithful else self.volume_path(python_file)
        else:
            main_file = self.local_path(python_file)
        parameters = [
            str(self.local_path(p))
            if p.startswith(("/dbfs/", "dbfs:"))
            else str(self.volume_path(p))
            if p.startswith("/Volumes/") and not self.faithful
            else p
            for p in python_task.get("parameters", [])
        ]
        spark_version = new_cluster.get("spark_version") or self.clusters[run.cluster_id].get("spark_version", "")
        environ = {
            **_base_environment(),
            **self.cluster_environment,
            **(new_cluster.get("spark_env_vars") or {}),
            "DATABRICKS_RUNTIME_VERSION": spark_version,
            # the emulated cluster's Spark is Sail (no DESCRIBE HISTORY): its storage layer uses delta-rs
            "SPARK_ENGINE": "sail",
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_TOKEN": self.token,
        }
        log_path = self.root / "runs" / f"{run.run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            command = [self.python, "-u", "-c", _RUNTIME_BOOTSTRAP, str(main_file), *parameters]
            if self.faithful:
                # the cluster's own view of the files: <root>/volumes mounted at /Volumes, for this process only
                mount = f'mount --bind {self.volumes_root} /Volumes && exec "$@"'
                command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "cluster", *command]
            run.process = subprocess.Popen(  # noqa: S603 (this machine's python running the uploaded task)
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
                cwd=self.root,
            )
            try:
                code = run.process.wait(timeout=run.timeout_seconds or None)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()
                self._finish(run, "TERMINATED", "TIMEDOUT", f"Run timed out after {run.timeout_seconds} seconds.")
                return
        run.logs = log_path.read_text(errors="replace")
        if run.cancel_requested:
            return
        if code == 0:
            self._finish(run, "TERMINATED", "SUCCESS", "")
        else:
            lines = [line for line in run.logs.splitlines() if line.strip()]
            run.error = lines[-1] if lines else f"exit code {code}"
            run.error_trace = run.logs[-5000:]
            self._finish(run, "TERMINATED", "FAILED", "Workload failed, see run output for details")


def _without_empty(value: Any) -> Any:
    """A JSON value without None, empty containers and False defaults, for comparing request bodies."""
    if isinstance(value, dict):
        cleaned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def faithful_mode_available() -> str | None:
    """None when this machine can run the faithful mode's mount namespaces, else why not."""
    if not Path("/Volumes").is_dir():
        try:
            Path("/Volumes").mkdir()  # the empty mount point; the orchestrator sees nothing in it
        except OSError as error:
            return f"no /Volumes mount point and none can be created: {error}"
    probe = subprocess.run(  # noqa: S603
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False
    )  # fmt: skip
    return None if probe.returncode == 0 else f"mount namespaces are not available: {probe.stderr.decode()}"


def _base_environment() -> dict[str, str]:
    """The cluster process starts from a clean slate: only what a runtime has, not the orchestrator's settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "JAVA_HOME", "VIRTUAL_ENV", "TZ")
    return {key: os.environ[key] for key in keep if key in os.environ}
