"""What each environment runs on: Unity Catalog names, Databricks cluster, secret scope, MLflow, executor.

Pure declarations (no environment reading, no Dagster): `settings.py` picks one
profile from the environment variables and the resources are built from it.
Secrets never appear here, only the names of the variables and scope keys that
hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The schemas of a catalog; table asset keys are [schema, table]. `ml` holds the registered models and
# `ops` the volumes of the deployment's own files (wheel, step staging, Pipes messages, path tables).
SCHEMAS = ("landing", "bronze", "silver", "gold", "governance")
MODEL_SCHEMA = "ml"
OPS_SCHEMA = "ops"


@dataclass(frozen=True)
class Volume:
    """A Unity Catalog volume of the environment's catalog: `/Volumes/<catalog>/<schema>/<name>`."""

    schema: str
    name: str
    comment: str

    def path(self, catalog: str) -> str:
        return f"/Volumes/{catalog}/{self.schema}/{self.name}"


LANDING_VOLUME = Volume("landing", "feeds", "Raw feed files as received from the payer's systems, one folder a day.")
ARTIFACTS_VOLUME = Volume(OPS_SCHEMA, "artifacts", "The project wheel the job clusters install.")
STAGING_VOLUME = Volume(OPS_SCHEMA, "staging", "Step launcher staging and Dagster Pipes messages of running steps.")
LAKEHOUSE_VOLUME = Volume(OPS_SCHEMA, "lakehouse", "Tables addressed by path and Spark checkpoints.")
VOLUMES = (LANDING_VOLUME, ARTIFACTS_VOLUME, STAGING_VOLUME, LAKEHOUSE_VOLUME)

# Where the code runs: in this process (local) or as a one-off Databricks job run per step.
IN_PROCESS = "in_process"
DATABRICKS_STEP_LAUNCHER = "databricks_step_launcher"

# The Databricks workspace and its credentials come from these variables (never from config).
HOST_VARIABLE = "DATABRICKS_HOST"
TOKEN_VARIABLE = "DATABRICKS_TOKEN"  # noqa: S105 (the variable name, not a token)
# Set by the Databricks runtime on every cluster node: code that sees it runs on the cluster.
RUNTIME_VARIABLE = "DATABRICKS_RUNTIME_VERSION"


@dataclass(frozen=True)
class ClusterSpec:
    """A job cluster created for each step run (or an existing all-purpose cluster when its id is set)."""

    spark_version: str
    node_type_id: str
    num_workers: int
    autotermination_minutes: int = 30
    # Unity Catalog needs a single-user or shared access mode; jobs run as one principal.
    data_security_mode: str = "SINGLE_USER"
    spark_conf: tuple[tuple[str, str], ...] = (("spark.sql.session.timeZone", "UTC"),)


@dataclass(frozen=True)
class SecretToEnvironment:
    """A secret of the environment's scope exported to the step's process as an environment variable."""

    variable: str
    key: str


@dataclass(frozen=True)
class EnvironmentProfile:
    name: str
    catalog: str | None
    launcher: str
    executor: str  # "in_process" or "multiprocess"
    max_concurrent_steps: int = 1
    secret_scope: str | None = None
    cluster: ClusterSpec | None = None
    # Volume folder for the launcher's step artifacts (pickled step, code zip, events, stdout/stderr).
    staging_prefix: str | None = None
    # Volume folder where Dagster Pipes writes each external step's context and messages.
    pipes_prefix: str | None = None
    # The project wheel the deploy workflow uploads (a volume path); installed on every job cluster.
    wheel_uri: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_registry_uri: str | None = None
    # Seconds a step's Databricks run may take before Dagster cancels it and fails the step.
    step_timeout_seconds: int = 2 * 60 * 60
    secrets: tuple[SecretToEnvironment, ...] = ()
    # Unity Catalog principals (account groups / service principals) for the declarative grants.
    principals: dict[str, str] = field(default_factory=dict)

    @property
    def schemas(self) -> dict[str, str]:
        """Asset schema -> Unity Catalog schema (`catalog.schema`), or the plain schema locally."""
        return {schema: f"{self.catalog}.{schema}" if self.catalog else schema for schema in SCHEMAS}

    @property
    def model_namespace(self) -> str | None:
        """`catalog.schema` of the registered models (a Unity Catalog registry needs three-level names)."""
        return f"{self.catalog}.{MODEL_SCHEMA}" if self.catalog else None


# The key the silver layer pseudonymises identifiers with; on Databricks it lives only in the secret scope.
PSEUDONYMISATION_SECRET = SecretToEnvironment(variable="PSEUDONYMISATION_KEY", key="pseudonymisation-key")

# Databricks Runtime 17.3 LTS: Apache Spark 4.0 (the engine the suite runs: pyspark 4.0.x, delta-spark 4.0),
# Python 3.12; one constant so every environment runs the same runtime. Its installed Python packages are in
# assets_tests/databricks_runtime/<RUNTIME>.txt, which the cluster-install test resolves against.
RUNTIME = "17.3.x-scala2.13"
RUNTIME_PYTHON = "3.12"


# The file `make wheel` builds (pure Python: one wheel for 3.11 and 3.12).
WHEEL_NAME = "healthcare_assets-0.1.0-py3-none-any.whl"


def _deployed(
    name: str, node_type_id: str, num_workers: int, max_concurrent_steps: int, principals: dict[str, str]
) -> EnvironmentProfile:
    catalog = f"healthcare_{name}"
    return EnvironmentProfile(
        name=name,
        catalog=catalog,
        launcher=DATABRICKS_STEP_LAUNCHER,
        # Steps mostly wait for their Databricks run, so several run side by side.
        executor="multiprocess",
        max_concurrent_steps=max_concurrent_steps,
        secret_scope=f"healthcare-{name}",
        cluster=ClusterSpec(spark_version=RUNTIME, node_type_id=node_type_id, num_workers=num_workers),
        staging_prefix=f"{STAGING_VOLUME.path(catalog)}/steps",
        pipes_prefix=f"{STAGING_VOLUME.path(catalog)}/pipes",
        wheel_uri=f"{ARTIFACTS_VOLUME.path(catalog)}/wheels/{WHEEL_NAME}",
        mlflow_tracking_uri="databricks",
        mlflow_registry_uri="databricks-uc",
        secrets=(PSEUDONYMISATION_SECRET,),
        principals=principals,
    )


PROFILES: dict[str, EnvironmentProfile] = {
    "local": EnvironmentProfile(name="local", catalog=None, launcher=IN_PROCESS, executor="in_process"),
    "dev": _deployed(
        "dev",
        node_type_id="i3.xlarge",
        num_workers=1,
        max_concurrent_steps=2,
        principals={
            "pipeline": "healthcare-dev-pipeline",
            "data_engineers": "healthcare-data-engineers",
            "data_scientists": "healthcare-data-scientists",
        },
    ),
    "staging": _deployed(
        "staging",
        node_type_id="i3.xlarge",
        num_workers=2,
        max_concurrent_steps=4,
        principals={
            "pipeline": "healthcare-staging-pipeline",
            "data_engineers": "healthcare-data-engineers",
            "data_scientists": "healthcare-data-scientists",
        },
    ),
    "prod": _deployed(
        "prod",
        node_type_id="i3.2xlarge",
        num_workers=4,
        max_concurrent_steps=4,
        principals={
            "pipeline": "healthcare-prod-pipeline",
            "data_engineers": "healthcare-data-engineers",
            "data_scientists": "healthcare-data-scientists",
            "auditors": "healthcare-compliance-auditors",
        },
    ),
}
