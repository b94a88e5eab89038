"""What each environment runs on: Unity Catalog names, Databricks cluster, secret scope, MLflow, executor.

Pure declarations (no environment reading, no Dagster): `settings.py` picks one
profile from the environment variables and the resources are built from it.
Secrets never appear here, only the names of the variables and scope keys that
hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The schemas of a catalog; table asset keys are [schema, table].
SCHEMAS = ("landing", "bronze", "silver", "gold")

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
    # DBFS folder for the launcher's step artifacts (pickled step, code zip, events, stdout/stderr).
    staging_prefix: str | None = None
    # The project wheel the deploy workflow uploads; installed on every job cluster.
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


# The key the silver layer pseudonymises identifiers with; on Databricks it lives only in the secret scope.
PSEUDONYMISATION_SECRET = SecretToEnvironment(variable="PSEUDONYMISATION_KEY", key="pseudonymisation-key")

# Databricks Runtime 16.4 LTS: Spark 3.5, Python 3.12; pinned so every environment runs the same runtime.
RUNTIME = "16.4.x-scala2.12"


def _deployed(
    name: str, node_type_id: str, num_workers: int, max_concurrent_steps: int, principals: dict[str, str]
) -> EnvironmentProfile:
    return EnvironmentProfile(
        name=name,
        catalog=f"healthcare_{name}",
        launcher=DATABRICKS_STEP_LAUNCHER,
        # Steps mostly wait for their Databricks run, so several run side by side.
        executor="multiprocess",
        max_concurrent_steps=max_concurrent_steps,
        secret_scope=f"healthcare-{name}",
        cluster=ClusterSpec(spark_version=RUNTIME, node_type_id=node_type_id, num_workers=num_workers),
        staging_prefix=f"/dagster_staging/healthcare_assets/{name}",
        wheel_uri=f"dbfs:/FileStore/healthcare_assets/{name}/healthcare_assets-0.1.0-py3-none-any.whl",
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
