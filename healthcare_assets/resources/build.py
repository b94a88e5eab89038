"""The resources of an environment, built from its settings."""

from healthcare_assets.resources.alerts import build_alerts
from healthcare_assets.resources.databricks import (
    PIPES_DATABRICKS,
    SPARK_STEP_LAUNCHER,
    pipes_databricks_client,
    step_launcher_resource,
)
from healthcare_assets.resources.lakehouse import DeltaIOManager, LakehouseResource
from healthcare_assets.resources.mlflow import MlflowResource
from healthcare_assets.resources.privacy import PrivacyResource
from healthcare_assets.resources.serving import DATABRICKS, LOCAL, ServingResource
from healthcare_assets.resources.spark import SparkResource
from healthcare_assets.settings import Settings


def build_resources(settings: Settings) -> dict:
    spark = SparkResource(engine=settings.spark_engine)
    lakehouse = LakehouseResource(
        spark=spark, root=settings.lakehouse_root, landing_root=settings.landing_root, catalog=settings.catalog
    )
    return {
        "lakehouse": lakehouse,
        "io_manager": DeltaIOManager(lakehouse=lakehouse),
        "privacy": PrivacyResource(environment=settings.environment),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            registry_uri=settings.mlflow_registry_uri,
            model_namespace=settings.model_namespace,
        ),
        "alerts": build_alerts(settings.alerts),
        # Databricks Model Serving deployed, MLflow's scoring server on 127.0.0.1 locally
        "serving": ServingResource(mode=LOCAL if settings.is_local else DATABRICKS, environment=settings.environment),
        # in-process locally and on the cluster; the Databricks step launcher / Pipes client when deployed
        SPARK_STEP_LAUNCHER: step_launcher_resource(settings),
        PIPES_DATABRICKS: pipes_databricks_client(settings),
    }
