"""Every environment's code location, launcher wiring and Unity Catalog governance, without any network."""

import socket
from pathlib import Path

import dagster as dg
import pytest
import yaml

from healthcare_assets.definitions import build_definitions
from healthcare_assets.domain.grants import ROLE_PRIVILEGES, governance_statements, table_docs
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.environments import PROFILES
from healthcare_assets.resources.build import build_resources
from healthcare_assets.resources.databricks import (
    SPARK_STEP_LAUNCHER,
    launcher_config,
    pipes_training_task,
)
from healthcare_assets.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ["local", "dev", "staging", "prod"]
TOKEN = "dapi-secret-token-value"  # fake credential for the emulator; pragma: allowlist secret
WORKSPACE = {"DATABRICKS_HOST": "https://adb-1.cloud.databricks.com", "DATABRICKS_TOKEN": TOKEN}


def settings_for(environment: str):
    return load_settings({"HEALTHCARE_ENV": environment, "LAKEHOUSE_ROOT": "/tmp/lakehouse", **WORKSPACE})


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access while loading definitions: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_definitions_load_and_validate_for_every_environment_without_network(environment, no_network):
    defs = build_definitions(settings_for(environment))
    repository = defs.get_repository_def()
    repository.load_all_definitions()
    assert defs.resolve_job_def("daily_pipeline") is not None
    launcher = repository.get_top_level_resources()[SPARK_STEP_LAUNCHER]
    assert (environment != "local") == ("databricks" in (launcher.description or "").lower())


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_no_step_that_is_not_launched_requires_the_lakehouse_or_spark_when_deployed(environment):
    """The orchestrator has no Spark session, no /Volumes and no pseudonymisation key: every step that needs
    one of them (a cluster-only resource, a Spark-kind table, a table input) must go to Databricks."""
    defs = build_definitions(settings_for(environment))
    graph = defs.resolve_asset_graph()
    spark_tables = {key for key in graph.get_all_asset_keys() if "spark" in graph.get(key).kinds}
    steps = [a for a in graph.assets_defs if a.is_executable]
    launched_model_steps = set()
    for step in steps:
        touches = (
            {"lakehouse", "privacy"} & set(step.required_resource_keys)
            or any(spec.key in spark_tables for spec in step.specs)
            or any(check.asset_key in spark_tables for check in step.check_specs)
            or any(not i.dagster_type.is_nothing for i in step.op.input_defs)
        )
        launched = SPARK_STEP_LAUNCHER in step.op.required_resource_keys
        assert launched or not touches, f"{step.op.name} needs the lakehouse or Spark but runs on the orchestrator"
        if launched and not any(spec.key in spark_tables for spec in step.specs):
            launched_model_steps.add(step.op.name)
    # model training, evaluation and registration read the lakehouse: they are launched too
    assert {"fraud__fraud_model_catboost", "fraud__fraud_model_evaluation", "risk__member_risk_model"} <= (
        launched_model_steps
    )
    assert {"risk__registered_risk_model", "fraud__registered_fraud_model"} <= launched_model_steps


def test_the_launcher_config_names_the_credential_variables_and_never_holds_their_values():
    config = launcher_config(settings_for("staging"))
    assert config["databricks_host"] == {"env": "DATABRICKS_HOST"}
    assert config["databricks_token"] == {"env": "DATABRICKS_TOKEN"}
    assert TOKEN not in str(config)
    assert config["run_config"]["cluster"]["new"]["nodes"]["node_types"]["node_type_id"] == "i3.xlarge"
    assert config["run_config"]["cluster"]["new"]["size"] == {"num_workers": 2}
    assert config["secrets_to_env_variables"] == [
        {"name": "PSEUDONYMISATION_KEY", "key": "pseudonymisation-key", "scope": "healthcare-staging"}
    ]
    assert config["env_variables"]["HEALTHCARE_ENV"] == "staging"
    # every file of a deployment lives in a Unity Catalog volume, none in the DBFS root
    assert config["staging_prefix"] == "/Volumes/healthcare_staging/ops/staging/steps"
    assert config["run_config"]["libraries"] == [
        {"whl": "/Volumes/healthcare_staging/ops/artifacts/wheels/healthcare_assets-0.1.0-py3-none-any.whl"}
    ]
    # the launcher's own defaults would pin databricks-sdk over the runtime's
    assert config["run_config"]["install_default_libraries"] is False


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_deployed_files_and_models_use_volumes_and_three_level_names(environment):
    settings = load_settings({"HEALTHCARE_ENV": environment, **WORKSPACE})
    catalog = f"healthcare_{environment}"
    assert settings.landing_root == f"/Volumes/{catalog}/landing/feeds"
    assert settings.lakehouse_root == f"/Volumes/{catalog}/ops/lakehouse"
    profile = settings.profile
    for path in (profile.wheel_uri, profile.staging_prefix, profile.pipes_prefix):
        assert str(path).startswith(f"/Volumes/{catalog}/ops/"), path
    mlflow = build_resources(settings)["mlflow"]
    assert mlflow.registry_uri == "databricks-uc"
    assert mlflow.registered_name("member_risk_model") == f"{catalog}.ml.member_risk_model"
    assert mlflow.alias_uri("member_risk_model", "champion") == f"models:/{catalog}.ml.member_risk_model@champion"
    local = build_resources(settings_for("local"))["mlflow"]
    assert local.registered_name("member_risk_model") == "member_risk_model"


def test_the_step_launcher_refuses_a_staging_folder_outside_a_volume():
    from healthcare_assets.resources.databricks import VolumeStepLauncher

    with pytest.raises(dg.DagsterInvariantViolationError, match="not a Unity Catalog volume path"):
        VolumeStepLauncher(
            run_config={}, permissions={}, databricks_host="https://x", databricks_token="t",  # noqa: S106
            secrets_to_env_variables=[], staging_prefix="/dagster_staging/dev", wait_for_logs=False,
            max_completion_wait_time_seconds=60, local_dagster_job_package_path="/tmp",
        )  # fmt: skip


def test_an_existing_cluster_replaces_the_job_cluster():
    settings = load_settings({"HEALTHCARE_ENV": "dev", "HEALTHCARE_CLUSTER_ID": "0101-abc", **WORKSPACE})
    assert launcher_config(settings)["run_config"]["cluster"] == {"existing": "0101-abc"}


def test_pipes_training_task_runs_the_script_on_the_environment_cluster_with_the_wheel():
    script = "/Volumes/healthcare_prod/ops/artifacts/scripts/train.py"
    task = pipes_training_task(settings_for("prod"), script, ["--model"])
    assert task["new_cluster"]["node_type_id"] == "i3.2xlarge"
    assert task["new_cluster"]["spark_env_vars"]["HEALTHCARE_ENV"] == "prod"
    assert {"whl": PROFILES["prod"].wheel_uri} in task["libraries"]
    assert task["spark_python_task"] == {"python_file": script, "parameters": ["--model"]}


def test_grants_give_scientists_gold_and_the_models_only_and_the_pipeline_writes():
    statements = governance_statements("healthcare_prod", PROFILES["prod"].principals)
    scientists = [s for s in statements if s.endswith("`healthcare-data-scientists`")]
    assert scientists == [
        "GRANT USE CATALOG ON CATALOG healthcare_prod TO `healthcare-data-scientists`",
        "GRANT USE SCHEMA, SELECT ON SCHEMA healthcare_prod.gold TO `healthcare-data-scientists`",
        "GRANT USE SCHEMA, EXECUTE ON SCHEMA healthcare_prod.ml TO `healthcare-data-scientists`",
    ]
    assert (
        "GRANT USE SCHEMA, SELECT, MODIFY, CREATE TABLE ON SCHEMA healthcare_prod.silver TO `healthcare-prod-pipeline`"
        in statements
    )
    # auditors exist in prod only
    assert any("compliance-auditors" in s for s in statements)
    assert not any("auditors" in s for s in governance_statements("healthcare_dev", PROFILES["dev"].principals))
    assert set(ROLE_PRIVILEGES["data_scientists"]) == {"gold", "ml"}
    # registering a model version in Unity Catalog needs CREATE MODEL; files need volume privileges
    assert "GRANT USE SCHEMA, CREATE MODEL, EXECUTE ON SCHEMA healthcare_prod.ml TO `healthcare-prod-pipeline`" in (
        statements
    )
    assert (
        "GRANT READ VOLUME, WRITE VOLUME ON VOLUME healthcare_prod.ops.staging TO `healthcare-prod-pipeline`"
        in statements
    )
    assert "GRANT READ VOLUME ON VOLUME healthcare_prod.landing.feeds TO `healthcare-prod-pipeline`" in statements


def test_the_grants_create_what_they_grant_on_before_granting_and_document_only_written_tables():
    statements = governance_statements(
        "healthcare_dev", PROFILES["dev"].principals, existing_tables={"bronze.medical_claims"}
    )
    first_grant = next(i for i, s in enumerate(statements) if s.startswith("GRANT"))
    created = statements[:first_grant]
    assert "CREATE SCHEMA IF NOT EXISTS healthcare_dev.ml" in created
    assert any(s.startswith("CREATE VOLUME IF NOT EXISTS healthcare_dev.ops.staging") for s in created)
    for statement in statements[first_grant:]:
        target = statement.split(" ON ")[1].split(" TO ")[0] if " ON " in statement else ""
        if target.startswith(("SCHEMA ", "VOLUME ")):
            name = target.split(" ")[1]
            assert any(name in s for s in created), statement
    commented = {s.split(" ")[3] for s in statements if s.startswith("COMMENT ON TABLE")}
    assert commented == {"healthcare_dev.bronze.medical_claims"}


def test_every_phi_column_of_the_contracts_is_tagged_and_silver_is_marked_pseudonymised():
    statements = governance_statements("healthcare_dev", PROFILES["dev"].principals)
    for name, source in SOURCES.items():
        for column in source.phi_columns:
            assert (
                f"ALTER TABLE healthcare_dev.bronze.{name} ALTER COLUMN {column} SET TAGS ('phi' = 'true')"
            ) in statements
        assert f"ALTER TABLE healthcare_dev.silver.{name} SET TAGS ('contains_phi' = 'false')" in statements
    assert "ALTER COLUMN first_name" in " ".join(statements)
    comments = [s for s in statements if s.startswith("COMMENT ON TABLE")]
    assert len(comments) == len(table_docs()) == 2 * len(SOURCES)


def test_comments_are_quoted_safely():
    from healthcare_assets.domain.grants import TableDoc, documentation_statements

    (comment, *_) = documentation_statements("c", [TableDoc("gold", "t", "member's 'risk'", False)])
    assert comment == "COMMENT ON TABLE c.gold.t IS 'member\\'s \\'risk\\''"


def test_the_grants_job_exists_where_there_is_a_catalog_and_runs_on_the_cluster():
    assert "unity_catalog_grants" not in {j.name for j in build_definitions(settings_for("local")).jobs or []}
    job = build_definitions(settings_for("dev")).resolve_job_def("unity_catalog_grants")
    (node,) = job.nodes
    assert SPARK_STEP_LAUNCHER in node.definition.required_resource_keys


def test_dagster_plus_and_workspace_files_point_at_the_code_location():
    cloud = yaml.safe_load((ROOT / "dagster_cloud.yaml").read_text())
    (location,) = cloud["locations"]
    assert location["code_source"]["module_name"] == "healthcare_assets.definitions"
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "healthcare_assets.definitions"
