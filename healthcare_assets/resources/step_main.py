"""The entry point of a launched step on the cluster: dagster-databricks' step main, with the run's history.

dagster-databricks runs the step against an ephemeral Dagster instance, which
knows nothing of earlier runs. The launcher stages, next to the pickled step,
the orchestrator's latest materialisations and check evaluations of the assets
the step can read (`instance_state_entries` in `resources/databricks.py`); they
are stored in the ephemeral instance before the step starts and before the
event listener that streams the step's own events back is attached, so the
step reads the history it would read locally and nothing is sent back twice.

Uploaded as a file and run as a script: it imports Dagster only, never the package.
"""

import gzip
import os
import sys
from typing import Any

from dagster import DagsterInstance
from dagster._serdes import deserialize_value
from dagster_databricks import databricks_step_main

INSTANCE_STATE_FILE_NAME = "instance_state.gz"


def store_history(instance: DagsterInstance, state: dict) -> None:
    """Stores the staged materialisations under their orchestrator storage ids (a gate's evaluation names the
    materialisation it judged by that id), then the check evaluations."""
    storage: Any = instance.event_log_storage  # the ephemeral instance's in-memory SQL storage
    event_to_row = storage._event_to_row
    try:
        for storage_id, entry in zip(state["storage_ids"], state["materializations"], strict=True):
            storage._event_to_row = lambda event, _id=storage_id: {**event_to_row(event), "id": _id}
            storage.store_event(entry)
    finally:
        storage._event_to_row = event_to_row
    for entry in state["check_evaluations"]:
        storage.store_event(entry)


def _instance_with_history(step_run_ref, event_listener_fn=None):
    instance = DagsterInstance.ephemeral()
    state_path = os.path.join(os.path.dirname(sys.argv[1]), INSTANCE_STATE_FILE_NAME)
    if os.path.exists(state_path):
        with gzip.open(state_path, "rb") as handle:
            store_history(instance, deserialize_value(handle.read().decode("utf-8"), as_type=dict))
    if event_listener_fn:
        instance.add_event_listener(step_run_ref.run_id, event_listener_fn)
    return instance


if __name__ == "__main__":
    # the runtime's globals of the task's script, which dagster-databricks' main reads as its own
    for name in ("dbutils", "sc"):
        if name in globals():
            setattr(databricks_step_main, name, globals()[name])
    databricks_step_main.external_instance_from_step_run_ref = _instance_with_history
    databricks_step_main.main(sys.argv[1], sys.argv[2], sys.argv[3])
