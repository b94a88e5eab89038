"""What a launched step knows of earlier runs: the orchestrator's history staged with it, and check evaluations
from the cluster pointed back at the orchestrator's storage ids (real Dagster instances, no cluster)."""

import dagster as dg
from dagster._serdes import deserialize_value, serialize_value

from healthcare_assets.resources.databricks import _with_orchestrator_target, instance_state
from healthcare_assets.resources.step_main import store_history

DAYS = dg.DailyPartitionsDefinition("2026-01-01")


@dg.asset(partitions_def=DAYS)
def model(context: dg.AssetExecutionContext):
    return dg.MaterializeResult(metadata={"model_uri": f"runs:/{context.partition_key}/model"})


@dg.asset_check(asset=model)
def model_gate():
    return dg.AssetCheckResult(passed=True)


@dg.asset(deps=[model])
def promotion():
    return None


@dg.asset
def unrelated():
    return None


DEFS = dg.Definitions(assets=[model, promotion, unrelated], asset_checks=[model_gate])


def _staged(orchestrator: dg.DagsterInstance, step_keys: set[dg.AssetKey]) -> dg.DagsterInstance:
    """The cluster's ephemeral instance after the step main stored what the launcher staged (serialised as sent)."""
    state = instance_state(orchestrator, step_keys, DEFS.resolve_asset_graph())
    cluster = dg.DagsterInstance.ephemeral()
    store_history(cluster, deserialize_value(serialize_value(state), as_type=dict))
    return cluster


def test_a_launched_step_reads_the_latest_model_the_partitions_and_the_gate_as_the_orchestrator_does():
    with dg.instance_for_test() as orchestrator:
        for day in ("2026-01-01", "2026-01-02"):
            assert dg.materialize([model, model_gate], instance=orchestrator, partition_key=day).success
        assert dg.materialize([unrelated], instance=orchestrator).success
        cluster = _staged(orchestrator, {promotion.key})

        latest = cluster.get_latest_materialization_event(model.key)
        assert (
            latest is not None and latest.asset_materialization.metadata["model_uri"].value == "runs:/2026-01-02/model"
        )
        assert cluster.get_materialized_partitions(model.key) == {"2026-01-01", "2026-01-02"}
        assert cluster.get_latest_materialization_event(unrelated.key) is not None
        # same storage ids: the gate's evaluation still names the latest materialisation, as promotion requires
        (record,) = cluster.fetch_materializations(model.key, limit=1).records
        (original,) = orchestrator.fetch_materializations(model.key, limit=1).records
        assert record.storage_id == original.storage_id
        execution = cluster.event_log_storage.get_latest_asset_check_execution_by_key([model_gate.check_key])
        target = execution[model_gate.check_key].evaluation.target_materialization_data
        assert target.storage_id == original.storage_id


def test_a_step_without_history_starts_from_an_empty_instance():
    with dg.instance_for_test() as orchestrator:
        cluster = _staged(orchestrator, {model.key})
        assert cluster.get_latest_materialization_event(model.key) is None


def test_a_check_evaluated_on_the_cluster_is_pointed_at_the_orchestrators_materialisation():
    with dg.instance_for_test() as cluster, dg.instance_for_test() as orchestrator:
        # the orchestrator already holds other events: the same materialisation gets another storage id here
        assert dg.materialize([unrelated], instance=orchestrator).success
        result = dg.materialize([model, model_gate], instance=cluster, partition_key="2026-01-01")
        entries = [r.event_log_entry for r in cluster.get_records_for_run(result.run_id).records]
        (evaluation,) = [e for e in entries if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
        materialization = next(e for e in entries if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION)
        orchestrator.store_event(materialization)  # as the launcher stores the events that come back

        retargeted = _with_orchestrator_target(orchestrator, evaluation)

        (stored,) = orchestrator.fetch_materializations(model.key, limit=1).records
        cluster_id = evaluation.dagster_event.event_specific_data.target_materialization_data.storage_id
        assert stored.storage_id != cluster_id
        assert retargeted.dagster_event.event_specific_data.target_materialization_data.storage_id == stored.storage_id
        assert _with_orchestrator_target(orchestrator, materialization) is materialization
