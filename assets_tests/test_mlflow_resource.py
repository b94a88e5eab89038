"""The MLflow resource against a real local SQLite tracking store and registry."""

import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource, pinned_requirements
from healthcare_assets.settings import load_settings


def test_local_store_sits_next_to_the_lakehouse(tmp_path):
    settings = load_settings({"LAKEHOUSE_ROOT": str(tmp_path / "lakehouse")})
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / '.mlflow' / 'mlflow.db'}"
    deployed = load_settings(
        {"HEALTHCARE_ENV": "dev", "DATABRICKS_HOST": "https://dev.example.com", "DATABRICKS_TOKEN": "t"}
    )
    assert (deployed.mlflow_tracking_uri, deployed.mlflow_registry_uri) == ("databricks", "databricks-uc")


def test_runs_registration_and_aliases(tmp_path):
    resource = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / '.mlflow' / 'mlflow.db'}")
    features = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(features, features[:, 0])
    with resource.start_run("probe", "first", tags={"purpose": "test"}) as run:
        mlflow.log_metric("r2", 1.0)
        logged = mlflow.sklearn.log_model(
            model, name="model", input_example=features[:2], pip_requirements=pinned_requirements("scikit-learn")
        )
    stored = resource.client().get_run(run.info.run_id)
    assert stored.data.metrics == {"r2": 1.0}
    assert stored.data.tags["purpose"] == "test"
    assert (tmp_path / ".mlflow" / "artifacts" / "probe").is_dir()

    assert resource.version_with_alias("probe_model", CHAMPION) is None
    first = resource.register_challenger(logged.model_uri, "probe_model")
    assert resource.version_with_alias("probe_model", CHALLENGER).version == first.version
    assert resource.version_with_alias("probe_model", CHAMPION) is None
    resource.promote("probe_model", first.version)
    second = resource.register_challenger(logged.model_uri, "probe_model")
    assert resource.version_with_alias("probe_model", CHAMPION).version == first.version
    assert resource.version_with_alias("probe_model", CHALLENGER).version == second.version
