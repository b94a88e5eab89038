"""The dev deployment end to end against a local Databricks workspace (`databricks_emulator.py`, faithful mode).

The orchestrator side is the real code location in `dev` with the volume-staged
step launcher and the Databricks SDK talking HTTP to the emulator; the emulated
cluster runs the uploaded `step_main.py` (dagster-databricks' step main) on this machine with the
embedded Sail engine in its own mount namespace, where the workspace's volumes
are `/Volumes` (the orchestrator has none), and the step's events come back into
the local instance. Every request body is checked against databricks-sdk's
dataclasses; DBFS-root libraries are refused as on a current workspace.
"""

import gzip
import pickle
import subprocess
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from databricks.sdk import WorkspaceClient
from deltalake import DeltaTable

from assets_tests.databricks_emulator import DatabricksEmulator, faithful_mode_available
from assets_tests.pipeline import SMALL_DATA
from healthcare_assets.assets.bronze import BRONZE_KEYS, QUARANTINE_KEY
from healthcare_assets.assets.fraud import MODEL_KEYS
from healthcare_assets.assets.governance import REGISTERED_FRAUD_MODEL_KEY
from healthcare_assets.assets.landing import SyntheticDataConfig
from healthcare_assets.assets.promotion import MODEL_AUDIT_LOG_KEY, PROMOTION_CHECK
from healthcare_assets.assets.risk import REGISTERED_RISK_MODEL_KEY
from healthcare_assets.assets.serving import FRAUD_ENDPOINT_KEY, PROBE_CHECK, RISK_ENDPOINT_KEY
from healthcare_assets.demo import DEMO_JOBS
from healthcare_assets.domain.synthetic import write_landing_day
from healthcare_assets.environments import PROFILES, RUNTIME
from healthcare_assets.gate_status import RANGE_TAGS
from healthcare_assets.resources.delta import PARTITION_COLUMN

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "dapi-emulator-token"  # fake credential for the emulator; pragma: allowlist secret
DEV = PROFILES["dev"]
DAY = date(2026, 1, 1)
PSEUDONYMISATION_KEY = "dev-pseudonymisation-key-from-the-scope"
BRONZE = [*BRONZE_KEYS.values(), QUARANTINE_KEY]


@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory) -> Path:
    """The wheel the deploy workflow uploads (built the same way: `uv build --wheel`)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [str(ROOT / ".venv/bin/uv"), "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)], check=True
    )
    return next(out.glob("healthcare_assets-*.whl"))


@pytest.fixture
def workspace(tmp_path, monkeypatch, project_wheel):
    """The emulated workspace with the dev secret scope and the wheel, and the orchestrator's variables for dev."""
    unavailable = faithful_mode_available()
    if unavailable:
        pytest.skip(f"the emulator's faithful mode needs mount namespaces: {unavailable}")
    with DatabricksEmulator(tmp_path / "workspace", TOKEN, faithful=True) as emulator:
        client = WorkspaceClient(host=emulator.url, token=TOKEN)
        client.secrets.create_scope(DEV.secret_scope)
        client.secrets.put_secret(DEV.secret_scope, "pseudonymisation-key", string_value=PSEUDONYMISATION_KEY)
        with project_wheel.open("rb") as wheel:
            client.files.upload(DEV.wheel_uri, wheel, overwrite=True)
        for variable in (
            "PSEUDONYMISATION_KEY",
            "DAGSTER_CLOUD_DEPLOYMENT_NAME",
            "SPARK_ENGINE",
            "HEALTHCARE_CLUSTER_ID",
            "LAKEHOUSE_ROOT",
            "LANDING_ROOT",
        ):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("HEALTHCARE_ENV", "dev")
        monkeypatch.setenv("DATABRICKS_HOST", emulator.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        # the emulated workspace has no Unity Catalog metastore: tables by path under the lakehouse volume
        monkeypatch.setenv("HEALTHCARE_CATALOG", "")
        monkeypatch.setenv("DATABRICKS_POLL_SECONDS", "0.25")
        yield emulator


def write_landing(workspace: DatabricksEmulator, day: date = DAY) -> None:
    """The payer's systems drop the day's feeds into the landing volume (the workspace side of the files)."""
    from healthcare_assets.settings import load_settings

    landing = workspace.volume_path(load_settings().landing_root)
    write_landing_day(SyntheticDataConfig(**SMALL_DATA).to_domain(), day, str(landing))


@dataclass
class RunOutcome:
    success: bool
    errors: str
    materialized: dict[dg.AssetKey, dg.AssetMaterialization]
    engine_messages: list[str]


def materialize_on_databricks(selection: list[dg.AssetKey], day: date = DAY) -> RunOutcome:
    """Runs the code location (as a run worker would: by code pointer) for the environment now configured."""
    # the definitions are cached per code pointer; each test configures the environment afresh
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    pointer = ModuleCodePointer("healthcare_assets.definitions", "load_definitions", working_directory=str(ROOT))
    job = ReconstructableJob(ReconstructableRepository(pointer), "__ASSET_JOB")
    # the tables only: each check would be one more Databricks run
    job = job.get_subset(asset_selection=set(selection), asset_check_selection=set())
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            job,
            instance,
            tags={"dagster/partition": day.isoformat()},
            run_config={"execution": {"config": {"in_process": {}}}},
        )
        return RunOutcome(
            success=result.success,
            errors="\n".join(_error_messages(result)),
            materialized={
                e.asset_key: e.step_materialization_data.materialization
                for e in result.get_asset_materialization_events()
            },
            engine_messages=[e.message or "" for e in result.all_events if e.event_type_value == "ENGINE_EVENT"],
        )


def _error_messages(result) -> list[str]:
    messages = []
    for event in result.all_events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            messages.append(error.to_string())
        if event.event_type_value in ("RUN_FAILURE", "STEP_FAILURE") and event.message:
            messages.append(event.message)
    return messages


def test_a_dev_spark_asset_runs_as_a_databricks_job_and_its_events_come_back(workspace):
    write_landing(workspace)
    result = materialize_on_databricks(BRONZE)
    assert result.success, result.errors

    # submitted once, with the dev cluster, the project wheel, the pinned libraries and the code location's env
    (submit,) = workspace.submitted("/jobs/runs/submit")
    (task,) = submit["tasks"]
    cluster = task["new_cluster"]
    assert (cluster["spark_version"], cluster["node_type_id"], cluster["num_workers"]) == (RUNTIME, "i3.xlarge", 1)
    assert cluster["data_security_mode"] == "SINGLE_USER"
    assert cluster["custom_tags"]["environment"] == "dev"
    libraries = [lib.get("whl") or lib["pypi"]["package"] for lib in task["libraries"]]
    assert DEV.wheel_uri in libraries
    # only the wheel: its dependencies never replace the runtime's packages (test_cluster_install.py)
    assert libraries == [DEV.wheel_uri]
    python_file = task["spark_python_task"]["python_file"]
    assert python_file.startswith(f"{DEV.staging_prefix}/") and python_file.endswith("/step_main.py")
    assert all(p.startswith(DEV.staging_prefix) for p in task["spark_python_task"]["parameters"])
    assert workspace.submitted("/api/2.0/dbfs/put") == workspace.submitted("/api/2.0/dbfs/create") == []
    assert submit["timeout_seconds"] == DEV.step_timeout_seconds

    # every bronze table materialised on the cluster, reported here with its metadata, written as Delta
    assert set(result.materialized) == set(BRONZE)
    rows = result.materialized[BRONZE_KEYS["medical_claims"]].metadata["dagster/row_count"].value
    from healthcare_assets.settings import load_settings

    lakehouse = workspace.volume_path(load_settings().lakehouse_root)
    assert rows == len(DeltaTable(str(lakehouse / "bronze" / "medical_claims")).to_pandas()) > 0
    assert not Path(load_settings().lakehouse_root).exists()  # the orchestrator has no /Volumes: all on the cluster
    assert any("Waiting for Databricks run" in message for message in result.engine_messages)
    (run_id,) = workspace.runs
    output = WorkspaceClient(host=workspace.url, token=TOKEN).jobs.get_run_output(run_id)
    assert output.metadata.state.result_state.value == "SUCCESS"
    # the step's stdout, which the launcher reads back from DBFS: the key was exported from the scope
    (stdout,) = [p for p in workspace.volumes_root.rglob("stdout")]
    assert "Exporting PSEUDONYMISATION_KEY from Databricks secret pseudonymisation-key" in stdout.read_text()

    # the step's settings reached the cluster; the pseudonymisation key only through the secret scope
    staged = [p for p in (workspace.volumes_root / "healthcare_dev/ops/staging").rglob("*") if p.is_file()]
    config = next(p for p in staged if p.name == "config.pkl")
    remote = pickle.loads(config.read_bytes())  # noqa: S301 (the launcher's own upload)
    assert remote.env_variables["HEALTHCARE_ENV"] == "dev"
    assert remote.secrets == [
        {"name": "PSEUDONYMISATION_KEY", "key": "pseudonymisation-key", "scope": DEV.secret_scope}
    ]
    for path in staged:
        content = gzip.decompress(path.read_bytes()) if path.name.endswith("events.pkl") else path.read_bytes()
        assert PSEUDONYMISATION_KEY.encode() not in content, path
    assert all(PSEUDONYMISATION_KEY not in str(body) for _, url, body in workspace.requests if "secrets" not in url)


def test_a_step_that_fails_on_the_cluster_fails_the_run_with_the_clusters_error(workspace):
    # no landing files for the day: the step raises on the cluster and its failure comes back
    result = materialize_on_databricks(BRONZE, day=date(2026, 1, 5))
    assert not result.success
    assert "2026-01-05" in result.errors
    assert workspace.runs[max(workspace.runs)].result_state == "SUCCESS"  # the job ran; the step failed inside it


def test_a_job_cluster_that_terminates_fails_the_run_with_the_termination_reason(workspace):
    workspace.cluster_termination_reason = "CLOUD_PROVIDER_LAUNCH_FAILURE (CLOUD_FAILURE)"
    result = materialize_on_databricks(BRONZE)
    assert not result.success
    assert "failed with result state: `DatabricksRunResultState.FAILED`" in result.errors
    assert "was terminated. Reason: CLOUD_PROVIDER_LAUNCH_FAILURE" in result.errors


def test_a_missing_project_wheel_fails_the_run_naming_the_library(workspace):
    workspace.volume_path(DEV.wheel_uri).unlink()
    result = materialize_on_databricks(BRONZE)
    assert not result.success
    assert f'Library installation failed for library due to user error for whl: "{DEV.wheel_uri}"' in result.errors


def test_a_run_that_outlasts_the_step_timeout_is_cancelled_and_fails(workspace, monkeypatch):
    workspace.cluster_start_seconds = 120  # the cluster never becomes ready in time
    monkeypatch.setenv("HEALTHCARE_STEP_TIMEOUT_SECONDS", "1")
    result = materialize_on_databricks(BRONZE)
    assert not result.success
    assert "took more than 1s to complete" in result.errors
    (run,) = workspace.runs.values()
    assert workspace.submitted("/jobs/runs/cancel") == [{"run_id": run.run_id}]
    assert run.result_state == "CANCELED"


def test_a_missing_secret_fails_before_any_cluster_starts_and_says_how_to_add_it(workspace):
    WorkspaceClient(host=workspace.url, token=TOKEN).secrets.delete_secret(DEV.secret_scope, "pseudonymisation-key")
    result = materialize_on_databricks(BRONZE)
    assert not result.success
    assert f"databricks secrets put-secret {DEV.secret_scope} pseudonymisation-key" in result.errors
    assert workspace.runs == {}


def test_the_deploy_command_uploads_the_wheel_and_checks_the_secret_scope(workspace, project_wheel, capsys):
    from healthcare_assets import deploy

    workspace.volume_path(DEV.wheel_uri).unlink()
    assert deploy.main(["upload-wheel", str(project_wheel)]) == 0
    assert workspace.volume_path(DEV.wheel_uri).read_bytes() == project_wheel.read_bytes()
    assert deploy.main(["check-secrets"]) == 0
    WorkspaceClient(host=workspace.url, token=TOKEN).secrets.delete_secret(DEV.secret_scope, "pseudonymisation-key")
    assert deploy.main(["check-secrets"]) == 1
    assert "put-secret healthcare-dev pseudonymisation-key" in capsys.readouterr().err


def test_the_landing_sensor_lists_the_landing_volume_through_the_files_api(workspace):
    write_landing(workspace)
    from healthcare_assets.definitions import load_definitions

    sensor = load_definitions().resolve_sensor_def("landing_day_sensor")
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in result.run_requests] == [DAY.isoformat()]
    listed = [path for method, path, _ in workspace.requests if path.startswith("/api/2.0/fs/directories/")]
    assert "/api/2.0/fs/directories/Volumes/healthcare_dev/landing/feeds/medical_claims" in listed


def test_a_library_in_the_dbfs_root_is_refused_like_a_current_workspace_does(workspace):
    from databricks.sdk.errors import OperationFailed
    from databricks.sdk.service import compute, jobs

    client = WorkspaceClient(host=workspace.url, token=TOKEN)
    waiter = client.jobs.submit(
        run_name="dbfs library",
        tasks=[
            jobs.SubmitTask(
                task_key="t",
                existing_cluster_id=None,
                new_cluster=compute.ClusterSpec(spark_version=RUNTIME, node_type_id="i3.xlarge", num_workers=1),
                spark_python_task=jobs.SparkPythonTask(python_file=f"{DEV.staging_prefix}/main.py"),
                libraries=[compute.Library(whl="dbfs:/FileStore/healthcare_assets.whl")],
            )
        ],
    )
    with pytest.raises(OperationFailed, match="Libraries stored in the DBFS root are disabled"):
        waiter.result()


def test_a_request_body_the_sdk_would_not_write_is_rejected(workspace):
    from databricks.sdk.errors import InvalidParameterValue

    client = WorkspaceClient(host=workspace.url, token=TOKEN)
    task = {"task_key": "t", "existing_cluster_id": "c", "spark_python_task": {"python_file": "/x.py"}}
    with pytest.raises(InvalidParameterValue, match="does not match SubmitTask"):
        client.api_client.do(
            "POST",
            "/api/2.1/jobs/runs/submit",
            body={"tasks": [{**task, "libaries": [{"whl": "/Volumes/c/s/v/x.whl"}]}]},
        )


def test_the_champion_is_served_through_the_model_serving_api_with_champion_and_challenger_routes(workspace):
    from healthcare_assets.resources.serving import DATABRICKS, ServedModel, ServingResource

    serving = ServingResource(mode=DATABRICKS, environment="dev")
    model = ServedModel("healthcare_dev.ml.claims_fraud_autoencoder", "3", "4", "models:/unused")
    url = serving.deploy("fraud-detector-dev", model)
    assert url.endswith("/serving-endpoints/fraud-detector-dev/invocations")
    serving.deploy("fraud-detector-dev", ServedModel(model.registered_name, "4", "4", "models:/unused"))
    (created,) = workspace.submitted("/api/2.0/serving-endpoints")
    entities = created["config"]["served_entities"]
    assert [(e["name"], e["entity_version"], e["scale_to_zero_enabled"]) for e in entities] == [
        ("champion", "3", True),
        ("challenger", "4", True),
    ]
    assert created["config"]["traffic_config"]["routes"] == [
        {"served_model_name": "champion", "traffic_percentage": 100},
        {"served_model_name": "challenger", "traffic_percentage": 0},
    ]
    (updated,) = workspace.submitted("/api/2.0/serving-endpoints/fraud-detector-dev/config")
    assert [e["entity_version"] for e in updated["served_entities"]] == ["4"]  # promoted: one version serves


# --- the whole dev graph, models included ---------------------------------------------------------------------
# The jobs `make run` runs, in its order, each launched step a Databricks run whose cluster sees `/Volumes` while
# this process does not: ingestion over GRAPH_START..GRAPH_DAY, then training, serving, scoring and monitoring
# for GRAPH_DAY with the data and training settings the promotion scenarios pass every gate with on little data
# (four days of history before the held-out day). A launched step runs against an ephemeral Dagster instance on
# the cluster; it finds the model an earlier run trained and the gates promotion re-reads because the launcher
# stages that history beside the step (`resources/step_main.py`). MLflow is one SQLite store outside the volumes
# that the cluster processes and this one share (the emulated workspace has no MLflow service); its serving
# endpoints answer from it.
GRAPH_START, GRAPH_DAY = date(2026, 1, 1), date(2026, 1, 5)
GRAPH_DATA = {"claims_per_day": 600, "fraud_rate": 0.1, "num_members": 1500, "num_providers": 60, "bad_record_rate": 0}
GRAPH_TRAINING = {
    "catboost": {"iterations": 30, "depth": 4, "holdout_days": 1},
    "xgboost": {"iterations": 100, "depth": 3, "holdout_days": 1},
}


# Checks of these groups (models, serving, governance: the promotion gates, most of them in the model steps) and
# the scored tables' flag-rate gates run; the other data-quality checks of the tables are one more cluster run
# each, proven like the bronze tables above and by the local suite.
GATED_GROUPS = ("fraud", "risk", "serving", "governance")
LAUNCHED_GATES = ("flag_rate_in_band",)


def _gates_and_model_checks(job: ReconstructableJob) -> set[dg.AssetCheckKey]:
    """Every check of the models, the serving endpoints and governance, and the scored tables' flag-rate gates."""
    layer = job.get_definition().asset_layer
    return {
        key
        for key in layer.asset_graph.asset_check_keys
        if key.asset_key in layer.selected_asset_keys
        and (layer.asset_graph.get(key.asset_key).group_name in GATED_GROUPS or key.name.startswith(LAUNCHED_GATES))
    }


def _execution_config(job: ReconstructableJob) -> dict:
    """One step at a time in this process where the job allows it (each step is a cluster process already)."""
    executor = job.get_definition().executor_def
    return {"execution": {"config": {"in_process": {}}}} if executor.name == "multi_or_in_process_executor" else {}


@pytest.mark.slow
def test_the_whole_dev_graph_runs_on_the_emulated_workspace_models_included(
    workspace,
    tmp_path,
    monkeypatch,
):
    from healthcare_assets.settings import load_settings

    store = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    (tmp_path / "mlflow").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store)
    workspace.model_registry_uri = store
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    pointer = ModuleCodePointer("healthcare_assets.definitions", "load_definitions", working_directory=str(ROOT))
    repository = ReconstructableRepository(pointer)
    window = dict(zip(RANGE_TAGS, (GRAPH_START.isoformat(), GRAPH_DAY.isoformat()), strict=True))
    day_only = dict(zip(RANGE_TAGS, (GRAPH_DAY.isoformat(), GRAPH_DAY.isoformat()), strict=True))
    landing = workspace.volume_path(load_settings().landing_root)
    for offset in range((GRAPH_DAY - GRAPH_START).days + 1):  # the payer's feeds for the window
        write_landing_day(
            SyntheticDataConfig(**GRAPH_DATA).to_domain(), GRAPH_START + timedelta(days=offset), str(landing)
        )
    training = {"ops": {MODEL_KEYS[t].to_python_identifier(): {"config": c} for t, c in GRAPH_TRAINING.items()}}
    failures = {}
    with dg.instance_for_test() as instance:
        for name in DEMO_JOBS:
            job = ReconstructableJob(repository, name)
            assets = set(job.get_definition().asset_layer.selected_asset_keys)
            job = job.get_subset(asset_selection=assets, asset_check_selection=_gates_and_model_checks(job))
            partitioned = job.get_definition().partitions_def is not None
            # a range, as `make run` runs them (a one-day range for training: its model gates then judge the
            # unpartitioned models' latest materialisations rather than a partition they do not have)
            tags = {} if not partitioned else window if name == "daily_pipeline" else day_only
            run_config = {**_execution_config(job), **(training if name == "fraud_model_training" else {})}
            started = time.monotonic()
            result = dg.execute_job(job, instance, tags=tags, run_config=run_config)
            print(f"{name}: {'succeeded' if result.success else 'FAILED'} in {time.monotonic() - started:.0f} s")
            if not result.success:
                failures[name] = [
                    e.message for e in result.all_events if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
                ]
        assert failures == {}

        # every step that touches the lakehouse ran on a cluster: this process never had the volumes
        settings = load_settings()
        lakehouse = workspace.volume_path(settings.lakehouse_root)
        assert not Path(settings.lakehouse_root).exists()
        claims = DeltaTable(str(lakehouse / "gold" / "claim_features")).to_pandas()
        assert len(claims) > 0 and str(claims[PARTITION_COLUMN].max())[:10] == str(GRAPH_DAY)
        for table in ("fraud_scores_catboost", "fraud_scores_xgboost", "member_risk_predictions"):
            assert len(DeltaTable(str(lakehouse / "gold" / table)).to_pandas()) > 0, table

        # the models were trained, registered and judged on the cluster; the decisions are in the audit log
        client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
        registered = {m.name for m in client.search_registered_models()}
        assert len(registered) >= 2, registered
        audit = DeltaTable(str(lakehouse / "governance" / "model_audit_log")).to_pandas()
        assert len(audit) >= 2 and set(audit["promoted"].astype(bool)) <= {True, False}
        audit_event = instance.get_latest_materialization_event(MODEL_AUDIT_LOG_KEY)
        assert audit_event is not None

        # promotion on the cluster re-read every gate from the staged history and found each evaluated and passed
        for key in (REGISTERED_FRAUD_MODEL_KEY, REGISTERED_RISK_MODEL_KEY):
            event = instance.get_latest_materialization_event(key)
            assert event is not None, key
            metadata = event.asset_materialization.metadata
            assert "gate_results" not in metadata, (key, metadata["gate_results"].value)  # listed on a refusal only
            assert len(metadata["verified_gates"].value) >= 5, key
            assert _latest_check_passed(instance, dg.AssetCheckKey(key, PROMOTION_CHECK)), key  # promoted
        # the champions serve from the emulated Model Serving endpoints with the batch scores
        for key in (FRAUD_ENDPOINT_KEY, RISK_ENDPOINT_KEY):
            assert _latest_check_passed(instance, dg.AssetCheckKey(key, PROBE_CHECK)), key
        assert set(workspace.endpoints) == {"fraud-detector-dev", "member-risk-dev"}
        assert len(workspace.runs) >= 27  # one Databricks run per launched step


def _latest_check_passed(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> bool:
    execution = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    evaluation = execution.evaluation if execution is not None else None
    return isinstance(evaluation, dg.AssetCheckEvaluation) and evaluation.passed
