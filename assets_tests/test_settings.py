import pytest

from healthcare_assets.settings import ConfigurationError, get_environment, load_settings


def test_local_is_the_default_environment_with_the_embedded_engine(tmp_path):
    settings = load_settings({"LAKEHOUSE_ROOT": str(tmp_path)})
    assert settings.environment == "local"
    assert settings.spark_engine == "sail"
    assert settings.lakehouse_root == str(tmp_path)
    assert settings.landing_root == str(tmp_path / "landing")
    assert settings.catalog is None


def test_dagster_plus_deployment_name_selects_the_environment():
    assert get_environment({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "staging"}) == "staging"
    assert get_environment({"HEALTHCARE_ENV": "prod", "DAGSTER_CLOUD_DEPLOYMENT_NAME": "staging"}) == "prod"


WORKSPACE = {"DATABRICKS_HOST": "https://dev.cloud.databricks.com", "DATABRICKS_TOKEN": "t"}


def test_deployed_environment_uses_unity_catalog_and_the_cluster_session():
    settings = load_settings({"HEALTHCARE_ENV": "dev", **WORKSPACE})
    assert settings.catalog == "healthcare_dev"
    assert settings.spark_engine == "databricks"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_each_deployed_environment_has_its_catalog_cluster_scope_and_mlflow(environment):
    settings = load_settings({"HEALTHCARE_ENV": environment, **WORKSPACE})
    profile = settings.profile
    assert settings.catalog == profile.catalog == f"healthcare_{environment}"
    assert profile.schemas["gold"] == f"healthcare_{environment}.gold"
    assert profile.secret_scope == f"healthcare-{environment}"
    assert profile.cluster is not None and profile.cluster.num_workers >= 1
    assert (settings.mlflow_tracking_uri, settings.mlflow_registry_uri) == ("databricks", "databricks-uc")
    assert settings.launches_steps_on_databricks


def test_prod_runs_on_bigger_clusters_than_dev():
    dev, prod = (load_settings({"HEALTHCARE_ENV": env, **WORKSPACE}).profile.cluster for env in ("dev", "prod"))
    assert prod.num_workers > dev.num_workers


def test_local_runs_steps_in_process_without_databricks():
    settings = load_settings({})
    assert settings.profile.launcher == "in_process" and not settings.launches_steps_on_databricks


def test_on_the_cluster_steps_run_in_process_and_need_the_key_from_the_secret_scope():
    cluster = {"HEALTHCARE_ENV": "dev", "DATABRICKS_RUNTIME_VERSION": "16.4", "PSEUDONYMISATION_KEY": "k"}
    settings = load_settings(cluster)
    assert settings.on_databricks_cluster and not settings.launches_steps_on_databricks
    with pytest.raises(ConfigurationError, match="PSEUDONYMISATION_KEY is not set"):
        load_settings({k: v for k, v in cluster.items() if k != "PSEUDONYMISATION_KEY"})


def test_an_empty_catalog_addresses_tables_by_path():
    assert load_settings({"HEALTHCARE_ENV": "dev", "HEALTHCARE_CATALOG": "", **WORKSPACE}).catalog is None


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"HEALTHCARE_ENV": "qa"}, "HEALTHCARE_ENV='qa' is not one of"),
        ({"SPARK_ENGINE": "duckdb"}, "SPARK_ENGINE='duckdb' is not one of"),
        ({"HEALTHCARE_ENV": "prod"}, "DATABRICKS_HOST is not set: environment 'prod' runs its Spark steps"),
        ({"HEALTHCARE_ENV": "dev", "DATABRICKS_HOST": "dev.cloud.databricks.com"}, "must be the workspace URL"),
        ({"HEALTHCARE_ENV": "staging", "DATABRICKS_HOST": "https://s.example.com"}, "DATABRICKS_TOKEN is not set"),
        ({"HEALTHCARE_ENV": "dev", **WORKSPACE, "DATABRICKS_POLL_SECONDS": "soon"}, "DATABRICKS_POLL_SECONDS='soon'"),
    ],
)
def test_bad_configuration_fails_at_load_time_with_the_variable_to_fix(environ, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ)
