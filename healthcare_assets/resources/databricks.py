"""Where Spark steps run: in-process locally, as Databricks job runs in deployed environments.

* Every step that touches the lakehouse or Spark requires the `SPARK_STEP_LAUNCHER`
  resource (added by `launch_spark_steps`, nothing to write in the asset).
  Deployed, the key is `VolumeStepLauncher`, dagster-databricks' step launcher
  staged in a Unity Catalog volume instead of the DBFS root: each step is
  pickled, uploaded with the code through the Files API, run on a new job
  cluster (or an existing one) that installs the project wheel from a volume,
  and its events stream back into this run. Locally, and inside the step's own
  Databricks run, the key is a plain resource, so the step runs in-process.
* `pipes_databricks_client` is the Dagster Pipes route for standalone scripts:
  context and messages go through the environment's staging volume
  (dagster-databricks' Unity Catalog volume loaders), the script needs only
  `dagster-pipes`. The step launcher stays the route for the assets of this
  graph, which need the whole code location (IO manager, resources) on the cluster.

The Databricks host and token are read by the launcher from `DATABRICKS_HOST` /
`DATABRICKS_TOKEN` at run time (`dg.EnvVar`-style config): they never appear in
the launcher's config, the UI or the run's events.
"""

import contextlib
import gzip
import io
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import dagster as dg
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.context.system import StepExecutionContext
from dagster._record import copy
from dagster._serdes import serialize_value
from dagster_databricks import databricks_pyspark_step_launcher
from dagster_databricks.databricks import DatabricksClient
from dagster_databricks.databricks_pyspark_step_launcher import DatabricksPySparkStepLauncher
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound

import healthcare_assets
from healthcare_assets.environments import HOST_VARIABLE, TOKEN_VARIABLE, EnvironmentProfile
from healthcare_assets.resources import step_main
from healthcare_assets.settings import Settings

SPARK_STEP_LAUNCHER = "spark_step_launcher"
PIPES_DATABRICKS = "pipes_databricks"
SPARK_KIND = "spark"

# Installed on every job cluster besides the project wheel, whose own dependencies (dagster and its
# libraries at the pinned versions, catboost, xgboost-cpu) are ranges the runtime's packages satisfy: the
# runtime's Spark, Delta, pandas, pyarrow, databricks-sdk and mlflow-skinny are never replaced
# (assets_tests/test_cluster_install.py resolves exactly these against the runtime's package list).
CLUSTER_LIBRARIES: tuple[str, ...] = ()


def cluster_environment(settings: Settings) -> dict[str, str]:
    """Non-secret settings the step's process needs to load the same code location on the cluster."""
    return {
        "HEALTHCARE_ENV": settings.environment,
        "HEALTHCARE_CATALOG": settings.catalog or "",
        "LAKEHOUSE_ROOT": settings.lakehouse_root,
        "LANDING_ROOT": settings.landing_root,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_REGISTRY_URI": settings.mlflow_registry_uri or "",
    }


def new_cluster(profile: EnvironmentProfile) -> dict[str, Any]:
    """The job cluster of a step run, in the launcher's config shape."""
    cluster = profile.cluster
    if cluster is None:
        raise ValueError(f"environment {profile.name!r} has no Databricks cluster")
    return {
        "spark_version": cluster.spark_version,
        "nodes": {"node_types": {"node_type_id": cluster.node_type_id}},
        "size": {"num_workers": cluster.num_workers},
        "spark_conf": dict(cluster.spark_conf),
        "data_security_mode": cluster.data_security_mode,
        "custom_tags": [
            {"key": "project", "value": "healthcare_assets"},
            {"key": "environment", "value": profile.name},
        ],
    }


def cluster_libraries(profile: EnvironmentProfile) -> list[dict[str, Any]]:
    """The libraries of a step's job cluster: the project wheel from its volume, then CLUSTER_LIBRARIES."""
    return [{"whl": profile.wheel_uri}] + [{"pypi": {"package": lib}} for lib in CLUSTER_LIBRARIES]


def launcher_config(settings: Settings) -> dict[str, Any]:
    """Config of dagster-databricks' step launcher for the environment (credentials as env references)."""
    profile = settings.profile
    cluster = (
        {"existing": settings.existing_cluster_id} if settings.existing_cluster_id else {"new": new_cluster(profile)}
    )
    return {
        "run_config": {
            "run_name": f"healthcare_assets {profile.name}",
            "cluster": cluster,
            "libraries": cluster_libraries(profile),
            # the launcher's defaults would pin databricks-sdk to the orchestrator's version over the runtime's
            "install_default_libraries": False,
            "timeout_seconds": settings.step_timeout_seconds,
        },
        "databricks_host": {"env": HOST_VARIABLE},
        "databricks_token": {"env": TOKEN_VARIABLE},
        "env_variables": cluster_environment(settings),
        "secrets_to_env_variables": [
            {"name": secret.variable, "key": secret.key, "scope": profile.secret_scope} for secret in profile.secrets
        ],
        "staging_prefix": profile.staging_prefix,
        "max_completion_wait_time_seconds": settings.step_timeout_seconds,
        "poll_interval_sec": settings.databricks_poll_seconds,
        "verbose_logs": False,
    }


@contextlib.contextmanager
def _package_snapshot() -> Iterator[str]:
    """A folder holding only this package's sources: what the launcher zips and ships with each step.

    The launcher zips the whole folder it is given; the package's parent is the
    repository (virtualenv, lakehouse) or site-packages, so it gets a clean copy.
    """
    package_dir = Path(healthcare_assets.__file__).parent
    with tempfile.TemporaryDirectory(prefix="healthcare_assets-step-code-") as folder:
        shutil.copytree(package_dir, Path(folder) / package_dir.name, ignore=shutil.ignore_patterns("__pycache__"))
        yield folder


def volume_directory_lister(client: WorkspaceClient | None = None):
    """Lists a Unity Catalog volume folder through the Files API (the orchestrator has no /Volumes mount)."""

    def list_directory(path: str) -> list[tuple[str, bool]]:
        workspace = client or WorkspaceClient()  # reads DATABRICKS_HOST / DATABRICKS_TOKEN when the sensor runs
        try:
            return [(str(e.name), bool(e.is_directory)) for e in workspace.files.list_directory_contents(path)]
        except NotFound:
            return []

    return list_directory


def verify_secrets(client: WorkspaceClient, scope: str, keys: Sequence[str], environment: str) -> None:
    """Fails before any cluster starts when a secret the steps need is missing from the scope."""
    try:
        present = {secret.key for secret in client.secrets.list_secrets(scope)}
    except NotFound as error:
        raise dg.Failure(
            f"Databricks secret scope {scope!r} of environment {environment!r} does not exist: "
            f"create it with `databricks secrets create-scope {scope}`, then add the keys {sorted(keys)}"
        ) from error
    missing = sorted(set(keys) - present)
    if missing:
        raise dg.Failure(
            f"Databricks secret scope {scope!r} of environment {environment!r} lacks {missing}: add each with "
            + " and ".join(f"`databricks secrets put-secret {scope} {key}`" for key in missing)
        )


class VolumeFilesClient(DatabricksClient):
    """The launcher's file transfers through the Files API, so staging lives in a Unity Catalog volume."""

    def put_file(self, file_obj: IO, dbfs_path: str, overwrite: bool = False, block_size: int = 1024**2) -> None:
        self.workspace_client.files.upload(dbfs_path, io.BytesIO(file_obj.read()), overwrite=overwrite)

    def read_file(self, dbfs_path: str, block_size: int = 1024**2) -> bytes:
        try:
            contents = self.workspace_client.files.download(dbfs_path).contents
        except NotFound:
            return b""  # not written yet (the launcher polls events before the step has started)
        return contents.read() if contents is not None else b""


def instance_state(instance: dg.DagsterInstance, step_keys: set[dg.AssetKey], asset_graph) -> dict[str, list]:
    """The history a launched step may read from the instance (what `step_main.store_history` stores).

    The latest materialisation of every asset, the latest one of each partition
    of the step's own assets and their ancestors (checks ask which days exist),
    and the latest evaluation of every check: what model assets, promotion and
    the gates read (model URIs, training metadata, gate results).
    """
    events = dg.DagsterEventType.ASSET_MATERIALIZATION
    by_storage_id: dict[int, EventLogEntry] = {}
    read_by_the_step = set(step_keys).union(*(asset_graph.get_ancestor_asset_keys(k) for k in step_keys))
    for key in asset_graph.get_all_asset_keys():
        latest = instance.fetch_materializations(key, limit=1).records
        by_storage_id.update({r.storage_id: r.event_log_entry for r in latest})
        if key in read_by_the_step and asset_graph.get(key).is_partitioned:
            ids = list(instance.event_log_storage.get_latest_storage_id_by_partition(key, events).values())
            if ids:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, storage_ids=ids), limit=len(ids)
                ).records
                by_storage_id.update({r.storage_id: r.event_log_entry for r in records})
    check_keys = list(asset_graph.asset_check_keys)
    executions = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    ordered = sorted(by_storage_id)
    return {
        "storage_ids": ordered,
        "materializations": [by_storage_id[storage_id] for storage_id in ordered],
        "check_evaluations": [e.event for _, e in sorted(executions.items(), key=lambda kv: kv[1].id) if e.event],
    }


def _with_orchestrator_target(instance: dg.DagsterInstance, entry: EventLogEntry) -> EventLogEntry:
    """A check evaluation from the cluster names the materialisation it judged by the cluster instance's storage
    id; here it is the id the same materialisation got when it came back (same run and timestamp)."""
    event = entry.dagster_event
    evaluation = event.event_specific_data if event is not None else None
    if (
        event is None
        or not isinstance(evaluation, dg.AssetCheckEvaluation)
        or evaluation.target_materialization_data is None
    ):
        return entry
    target = evaluation.target_materialization_data
    records = instance.fetch_materializations(evaluation.asset_key, limit=100).records
    match = next((r for r in records if r.run_id == target.run_id and r.timestamp == target.timestamp), None)
    if match is None or match.storage_id == target.storage_id:
        return entry
    retargeted = copy(evaluation, target_materialization_data=copy(target, storage_id=match.storage_id))
    return entry._replace(dagster_event=event._replace(event_specific_data=retargeted))


class VolumeStepLauncher(DatabricksPySparkStepLauncher):
    """dagster-databricks' step launcher with its staging folder in a Unity Catalog volume.

    The orchestrator uploads and polls through the Files API; on the cluster the
    same `/Volumes/...` paths are local files, which is how the launcher's main
    script reads the step and writes its events. The main script is
    `step_main.py`, which gives the step's ephemeral instance the history
    staged beside the step (`instance_state`), so a model asset finds
    the model an earlier run trained as it does locally.
    """

    def __init__(self, **config: Any):
        prefix = config.get("staging_prefix", "")
        if not prefix.startswith("/Volumes/"):
            raise dg.DagsterInvariantViolationError(
                f"staging_prefix {prefix!r} is not a Unity Catalog volume path (/Volumes/<catalog>/<schema>/<volume>)"
            )
        super().__init__(**config)
        # the runner exposes its client read-only; the launcher reaches every file through it
        self.databricks_runner._client = VolumeFilesClient(
            host=config.get("databricks_host"), token=config.get("databricks_token")
        )

    def _dbfs_path(self, run_id: str, step_key: str, filename: str) -> str:
        return "/".join([self.staging_prefix, run_id, self._sanitize_step_key(step_key), Path(filename).name])

    def _internal_dbfs_path(self, run_id: str, step_key: str, filename: str) -> str:
        return self._dbfs_path(run_id, step_key, filename)

    def _main_file_local_path(self) -> str:
        return step_main.__file__

    def launch_step(self, step_context: StepExecutionContext) -> Iterator[dg.DagsterEvent]:
        # read when the step starts, as an in-process step would read it
        layer = step_context.job_def.asset_layer
        assets = layer.get_assets_def_for_node(step_context.node_handle)
        own = set(assets.keys) | {c.asset_key for c in assets.check_keys} if assets is not None else set()
        # the whole code location's graph: a step may read assets and gates outside its job (drift gates)
        load_repository = getattr(step_context.job, "get_repository_definition", None)
        repository = load_repository() if load_repository is not None else None
        graph = repository.asset_graph if repository is not None else layer.asset_graph
        state = instance_state(step_context.instance, own, graph)
        payload = gzip.compress(serialize_value(state).encode("utf-8"))
        self.databricks_runner.client.put_file(
            io.BytesIO(payload),
            self._dbfs_path(step_context.run_id, step_context.step.key, step_main.INSTANCE_STATE_FILE_NAME),
            overwrite=True,
        )
        yield from super().launch_step(step_context)

    def step_events_iterator(
        self, step_context: StepExecutionContext, step_key: str, databricks_run_id: int
    ) -> Iterator[dg.DagsterEvent]:
        """dagster-databricks' loop (poll, store each new event here, yield it), with check evaluations
        pointed at this instance's storage ids."""
        processed_events = 0
        start_poll_time = time.time()
        done = False
        yield self.get_databricks_run_dagster_event(step_context, databricks_run_id)
        while not done:
            with raise_execution_interrupts():
                time.sleep(self.databricks_runner.poll_interval_sec)
                try:
                    done = self.databricks_runner.client.poll_run_state(
                        logger=step_context.log,
                        start_poll_time=start_poll_time,
                        databricks_run_id=databricks_run_id,
                        max_wait_time_sec=self.databricks_runner.max_wait_time_sec,
                        verbose_logs=self.verbose_logs,
                    )
                finally:
                    all_events = self.get_step_events(
                        step_context.run_id, step_key, step_context.previous_attempt_count
                    )
                    for entry in all_events[processed_events:]:
                        entry = _with_orchestrator_target(step_context.instance, entry)
                        step_context.instance.handle_new_event(entry)
                        if entry.is_dagster_event:
                            yield entry.get_dagster_event()
                    processed_events = len(all_events)
        step_context.log.info(f"Databricks run {databricks_run_id} completed.")


@dg.resource(
    config_schema=databricks_pyspark_step_launcher.config_schema,
    description="Runs each Spark step as a Databricks job run staged in a Unity Catalog volume.",
)
def databricks_spark_step_launcher(context: dg.InitResourceContext) -> Iterator[DatabricksPySparkStepLauncher]:
    config = dict(context.resource_config)
    with _package_snapshot() as code_folder:
        launcher = VolumeStepLauncher(**config, local_dagster_job_package_path=code_folder)
        secrets = config.get("secrets_to_env_variables") or []
        for scope in sorted({secret["scope"] for secret in secrets}):
            keys = [secret["key"] for secret in secrets if secret["scope"] == scope]
            verify_secrets(
                launcher.databricks_runner.client.workspace_client,
                scope,
                keys,
                config["env_variables"].get("HEALTHCARE_ENV", "?"),
            )
        yield launcher


def step_launcher_resource(settings: Settings) -> dg.ResourceDefinition:
    """The `SPARK_STEP_LAUNCHER` resource of an environment."""
    if settings.launches_steps_on_databricks:
        return databricks_spark_step_launcher.configured(launcher_config(settings))
    where = "on the Databricks cluster" if settings.on_databricks_cluster else "locally"
    return dg.ResourceDefinition.none_resource(description=f"Spark steps run in-process ({where}).")


# Resources that exist only where the data is: the lakehouse (Spark + Delta under /Volumes or Unity Catalog)
# and the pseudonymisation key (exported from the secret scope on the cluster only).
CLUSTER_RESOURCES = frozenset({"lakehouse", "privacy"})


def needs_the_cluster(definition: Any, spark_keys: set[dg.AssetKey] = frozenset()) -> bool:  # type: ignore[assignment]
    """Whether a step touches the lakehouse or Spark: a Spark-kind asset (or a check of one), a step requiring
    a cluster-only resource, or one that loads a table input through the Delta IO manager."""
    if not isinstance(definition, dg.AssetsDefinition) or not definition.is_executable:
        return False
    op = definition.op
    return (
        any(SPARK_KIND in spec.kinds or spec.key in spark_keys for spec in definition.specs)
        or any(spec.asset_key in spark_keys for spec in definition.check_specs)
        or bool(CLUSTER_RESOURCES & set(definition.required_resource_keys))
        or any(not input_def.dagster_type.is_nothing for input_def in op.input_defs)
    )


def launch_spark_steps(assets: Sequence[Any], checks: Sequence[Any] = ()) -> tuple[list[Any], list[Any]]:
    """Makes every step that touches the lakehouse or Spark require the step launcher key.

    That is every Spark asset and every check of one (they read the same
    tables), and every other step that needs the lakehouse or the
    pseudonymisation key: model training, evaluation and promotion read Delta
    tables and write the audit log, so they run on the cluster too. Done here
    once so no asset names the launcher (Dagster also rejects
    `required_resource_keys` next to typed resource parameters). Specs of
    external assets and other definitions are returned unchanged.
    """
    spark_keys = {
        spec.key
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition)
        for spec in asset.specs
        if SPARK_KIND in spec.kinds
    }
    return (
        [_with_launcher(a) if needs_the_cluster(a, spark_keys) else a for a in assets],
        [_with_launcher(c) if needs_the_cluster(c, spark_keys) else c for c in checks],
    )


def _with_launcher(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    op = asset.op
    if SPARK_STEP_LAUNCHER in op.required_resource_keys:
        return asset
    launched_op = dg.OpDefinition(
        compute_fn=op.compute_fn,
        name=op.name,
        ins={input_def.name: dg.In.from_definition(input_def) for input_def in op.input_defs},
        outs={output_def.name: dg.Out.from_definition(output_def) for output_def in op.output_defs},
        description=op.description,
        config_schema=op.config_schema,
        required_resource_keys={*op.required_resource_keys, SPARK_STEP_LAUNCHER},
        tags=op.tags,
        retry_policy=op.retry_policy,
        code_version=op.version,
        pool=op.pool,
    )
    return dg.AssetsDefinition.dagster_internal_init(**{**asset.get_attributes_dict(), "node_def": launched_op})


def pipes_databricks_client(settings: Settings) -> dg.ResourceDefinition:
    """Dagster Pipes client for Databricks scripts, context and messages in the staging volume; deployed only."""
    volume = settings.profile.pipes_prefix

    @dg.resource(description="Dagster Pipes client that runs a script as a Databricks job run.")
    def _pipes_client(_context: dg.InitResourceContext):
        from dagster_databricks import PipesDatabricksClient
        from dagster_databricks.pipes import (
            PipesUnityCatalogVolumesContextInjector,
            PipesUnityCatalogVolumesMessageReader,
        )

        # WorkspaceClient reads DATABRICKS_HOST / DATABRICKS_TOKEN itself, at run time
        client = WorkspaceClient()
        return PipesDatabricksClient(
            client=client,
            context_injector=PipesUnityCatalogVolumesContextInjector(client=client, volume_path=str(volume)),
            message_reader=PipesUnityCatalogVolumesMessageReader(
                client=client, volume_path=str(volume), interval=settings.databricks_poll_seconds
            ),
            poll_interval_seconds=settings.databricks_poll_seconds,
        )

    if settings.launches_steps_on_databricks:
        return _pipes_client
    return dg.ResourceDefinition.none_resource(description="Pipes runs on Databricks only in deployed environments.")


def pipes_training_task(
    settings: Settings, script_uri: str, parameters: Sequence[str] = (), task_key: str = "train"
) -> dict[str, Any]:
    """A `SubmitTask` (as a dict) for `PipesDatabricksClient.run`: the script on the environment's job cluster.

    Pipes passes its bootstrap through `spark_env_vars` of the new cluster; the
    script only needs `dagster-pipes` (`open_dagster_pipes(context_loader=
    PipesUnityCatalogVolumesContextLoader(), message_writer=PipesUnityCatalogVolumesMessageWriter())`).
    """
    profile = settings.profile
    cluster = profile.cluster
    if cluster is None:
        raise ValueError(f"environment {profile.name!r} has no Databricks cluster")
    return {
        "task_key": task_key,
        "new_cluster": {
            "spark_version": cluster.spark_version,
            "node_type_id": cluster.node_type_id,
            "num_workers": cluster.num_workers,
            "data_security_mode": cluster.data_security_mode,
            "spark_conf": dict(cluster.spark_conf),
            "spark_env_vars": cluster_environment(settings),
        },
        "libraries": cluster_libraries(profile),
        "spark_python_task": {"python_file": script_uri, "parameters": list(parameters)},
    }
