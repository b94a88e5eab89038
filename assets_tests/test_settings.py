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


def test_deployed_environment_uses_unity_catalog_and_the_cluster_session():
    settings = load_settings({"HEALTHCARE_ENV": "dev", "PSEUDONYMISATION_KEY": "k"})
    assert settings.catalog == "healthcare_dev"
    assert settings.spark_engine == "databricks"


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"HEALTHCARE_ENV": "qa"}, "HEALTHCARE_ENV='qa' is not one of"),
        ({"SPARK_ENGINE": "duckdb"}, "SPARK_ENGINE='duckdb' is not one of"),
        ({"HEALTHCARE_ENV": "prod"}, "PSEUDONYMISATION_KEY is not set"),
    ],
)
def test_bad_configuration_fails_at_load_time_with_the_variable_to_fix(environ, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ)
