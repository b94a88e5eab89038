"""The whole `dev` graph, models included, through the step launcher into the faithful emulator.

The jobs `make run` runs, in its order, over the shortest window fraud training
accepts (3 held-out days and 1 to train on), each step a Databricks run whose
cluster sees `/Volumes` while this process does not. A launched step runs against
an ephemeral Dagster instance on the cluster; it finds the model an earlier run
trained and the gates promotion re-reads because the launcher stages that history
beside the step (`resources/step_main.py`). MLflow is one SQLite store outside the
volumes that the cluster processes and this one share: the emulated workspace has
no MLflow service.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from deltalake import DeltaTable

from assets_tests.test_deploy_databricks import ROOT
from assets_tests.test_deploy_databricks import project_wheel as _project_wheel  # noqa: F401 (fixture)
from assets_tests.test_deploy_databricks import workspace as _workspace  # noqa: F401 (fixture)
from healthcare_assets.assets.governance import REGISTERED_FRAUD_MODEL_KEY
from healthcare_assets.assets.promotion import MODEL_AUDIT_LOG_KEY, PROMOTION_CHECK
from healthcare_assets.assets.risk import REGISTERED_RISK_MODEL_KEY
from healthcare_assets.demo import DEMO_JOBS
from healthcare_assets.gate_status import RANGE_TAGS

START, END = date(2026, 1, 1), date(2026, 1, 4)


# The promotion gates that are their own launched steps; the other data-quality checks of the tables are one more
# cluster run each and are proven by the table-layer tests (test_deploy_databricks.py) and the local suite.
LAUNCHED_GATES = ("flag_rate_in_band", "disparate_impact_within_band_", "false_positive_rate_parity_")


def _gates_and_model_checks(job: ReconstructableJob) -> set[dg.AssetCheckKey]:
    """Every check of the models and the serving endpoints, and the promotion gates of the scored tables."""
    layer = job.get_definition().asset_layer
    return {
        key
        for key in layer.asset_graph.asset_check_keys
        if key.asset_key in layer.selected_asset_keys
        and (
            layer.asset_graph.get(key.asset_key).group_name in ("fraud", "risk", "serving")
            or key.name.startswith(LAUNCHED_GATES)
        )
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
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    pointer = ModuleCodePointer("healthcare_assets.definitions", "load_definitions", working_directory=str(ROOT))
    repository = ReconstructableRepository(pointer)
    window = dict(zip(RANGE_TAGS, (START.isoformat(), END.isoformat()), strict=True))
    failures = {}
    with dg.instance_for_test() as instance:
        for name in DEMO_JOBS:
            job = ReconstructableJob(repository, name)
            assets = set(job.get_definition().asset_layer.selected_asset_keys)
            job = job.get_subset(asset_selection=assets, asset_check_selection=_gates_and_model_checks(job))
            tags = window if job.get_definition().partitions_def is not None else {}
            result = dg.execute_job(job, instance, tags=tags, run_config=_execution_config(job))
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
        assert sorted(claims["claim_date"].astype(str).str[:10].unique()) == [
            "2026-01-01",
            "2026-01-02",
            "2026-01-03",
            "2026-01-04",
        ]
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

        # the gates were evaluated and the promotion decisions name each one (not "not evaluated")
        for key in (REGISTERED_FRAUD_MODEL_KEY, REGISTERED_RISK_MODEL_KEY):
            event = instance.get_latest_materialization_event(key)
            assert event is not None, key
            metadata = event.asset_materialization.metadata
            gate_results = str(metadata["gate_results"].value)
            assert "not evaluated on the latest materialisation" not in gate_results, (key, gate_results)
            execution = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(key, PROMOTION_CHECK)]
            )
            assert execution, key
        assert len(workspace.runs) >= 27  # one Databricks run per launched step
