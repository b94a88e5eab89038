"""The code location's fraud_model_training job, importable by name so Dagster can rebuild it in the
step processes of the multiprocess executor (settings come from the environment, e.g. LAKEHOUSE_ROOT)."""

import dagster as dg

from healthcare_assets.definitions import build_definitions
from healthcare_assets.settings import load_settings


def fraud_model_training() -> dg.JobDefinition:
    return build_definitions(load_settings()).resolve_job_def("fraud_model_training")
