"""What a user sees after a day is refused: its checks say which day and why, the report lists every check state.

One good day is ingested into a persistent instance, then the next day lands with a renamed header column (a
contract column missing) and bronze + silver are materialised for it: ingestion refuses the day. The bronze checks
planned in that run are failed by ingestion itself with the day and the reason; the silver checks, further
downstream, stay planned in a failed run ("execution failed"). `python -m healthcare_assets.report` then reads
that instance as a user would.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from assets_tests.embedded_charts import embedded_chart
from assets_tests.pipeline import Pipeline, check_results
from healthcare_assets import gate_status
from healthcare_assets.assets.bronze import BRONZE_KEYS, QUARANTINE_KEY
from healthcare_assets.assets.landing import synthetic_landing_feeds
from healthcare_assets.assets.promotion import AUDIT_SCHEMA, MODEL_AUDIT_LOG_KEY
from healthcare_assets.assets.reports import GATE_SUMMARY_KEY
from healthcare_assets.assets.silver import SILVER_KEYS
from healthcare_assets.checks.quality import BRONZE_CHECK_SEVERITIES

GOOD_DAY, REFUSED_DAY = date(2026, 1, 1), date(2026, 1, 2)
PROBLEM = "the header lacks contract column(s) claim_amount"
LANDING = list(synthetic_landing_feeds.keys)
INGESTION = [*BRONZE_KEYS.values(), QUARANTINE_KEY, *SILVER_KEYS.values()]


@dataclass
class Refused:
    pipeline: Pipeline
    home: Path
    run: dg.ExecuteInProcessResult


def _rename_header(path: Path, column: str, to: str) -> None:
    lines = path.read_text().splitlines()
    header = [to if name == column else name for name in lines[0].split(",")]
    path.write_text("\n".join([",".join(header), *lines[1:]]) + "\n")


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> Refused:
    tmp = tmp_path_factory.mktemp("refused")
    home = tmp / "dagster_home"
    home.mkdir()
    pipeline = Pipeline(tmp / "lakehouse")
    pipeline.instance = dg.DagsterInstance.local_temp(str(home))  # what `python -m healthcare_assets.report` reads
    assert pipeline.run(GOOD_DAY, selection=[*LANDING, *INGESTION]).success
    assert pipeline.run(REFUSED_DAY, selection=LANDING).success
    folder = Path(pipeline.settings.landing_root) / "medical_claims" / REFUSED_DAY.isoformat()
    _rename_header(sorted(folder.iterdir())[0], "claim_amount", "amount_billed")
    run = pipeline.run(REFUSED_DAY, selection=INGESTION)
    assert not run.success
    return Refused(pipeline, home, run)


def _states(refused: Refused) -> dict[str, gate_status.GateState]:
    checks = gate_status.graph_checks(refused.pipeline.defs.resolve_asset_graph())
    return {state.name: state for state in gate_status.latest_gate_states(refused.pipeline.instance, checks)}


def test_every_bronze_check_of_a_refused_day_says_which_day_and_why(refused):
    states = _states(refused)
    bronze = {key: states[f"{key.asset_key.to_user_string()} {key.name}"] for key in BRONZE_CHECK_SEVERITIES}
    assert len(bronze) == 9  # landing_reconciles and caught_up_with_landing per feed, quarantine_share_low
    for key, state in bronze.items():
        assert state.run_id == refused.run.run_id
        assert state.status == (gate_status.FAILED if state.blocking else gate_status.WARNING), state
        assert state.severity == BRONZE_CHECK_SEVERITIES[key].value
        assert state.reason.startswith(f"{REFUSED_DAY.isoformat()} not ingested: medical_claims landing file")
        assert PROBLEM in state.reason and "redelivered" in state.reason


def test_downstream_checks_of_a_refused_day_say_their_run_failed_and_why(refused):
    state = _states(refused)["silver/medical_claims primary_key_unique"]
    assert state.status == gate_status.EXECUTION_FAILED and state.days == REFUSED_DAY.isoformat()
    assert state.reason.startswith("not evaluated: step bronze_ingestion failed: medical_claims landing file")
    assert PROBLEM in state.reason


def test_the_rejection_is_said_once_and_not_inside_stack_traces(refused):
    events = refused.pipeline.instance.all_logs(refused.run.run_id)
    messages = [e.user_message for e in events if e.dagster_event is None]  # the run's log lines
    assert sum(PROBLEM in m for m in messages) == 1
    failures = [
        e.dagster_event
        for e in events
        if e.dagster_event is not None and e.dagster_event.event_type in (dg.DagsterEventType.STEP_FAILURE,)
    ]
    [failure] = failures
    error = failure.step_failure_data.error
    # the framework prints the step's error with its stack trace, on the step and again on the run: a pointer only
    assert PROBLEM not in error.message and REFUSED_DAY.isoformat() in error.message
    assert failure.step_failure_data.user_failure_data.metadata["problem"].value.startswith(PROBLEM)


def test_the_report_lists_every_check_state_after_a_failed_run(refused):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(refused.home),
        "LAKEHOUSE_ROOT": refused.pipeline.settings.lakehouse_root,
        "SPARK_ENGINE": refused.pipeline.settings.spark_engine,
    }
    result = subprocess.run(
        [sys.executable, "-m", "healthcare_assets.report"], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    summary = next(line for line in lines if line.startswith("Gates:"))
    # every check of the first day ran again on the refused day: none of them has a pass left
    for status in ("failed", "warning", "execution failed", "never run"):
        assert f" {status}" in summary, summary
    reconciles = next(line for line in lines if "bronze/medical_claims landing_reconciles" in line)
    assert reconciles.split()[:2] == ["FAILED", "ERROR"]
    assert f"[{REFUSED_DAY.isoformat()}]" in reconciles and PROBLEM in reconciles
    unique = next(line for line in lines if "silver/medical_claims primary_key_unique" in line)
    assert unique.startswith("  EXECUTION FAILED") and "step bronze_ingestion failed" in unique


def test_the_gate_summary_lists_every_gate_worst_first_with_day_and_reason(refused):
    result = refused.pipeline.run(REFUSED_DAY, selection=[GATE_SUMMARY_KEY])
    assert result.success
    table = DeltaTable(refused.pipeline.table(*GATE_SUMMARY_KEY.path)).to_pandas()
    graph = refused.pipeline.defs.resolve_asset_graph()
    assert len(table) == len(graph.asset_check_keys)
    order = [gate_status.STATUSES.index(status) for status in table["gate_status"]]
    assert order == sorted(order)  # worst first
    row = table[(table["asset"] == "bronze/medical_claims") & (table["check_name"] == "landing_reconciles")].iloc[0]
    assert (row["gate_status"], row["severity"], row["blocking"], row["days"]) == (
        gate_status.FAILED,
        "ERROR",
        True,
        REFUSED_DAY.isoformat(),
    )
    assert PROBLEM in row["gate_reason"]
    metadata = refused.pipeline.instance.get_latest_materialization_event(GATE_SUMMARY_KEY).asset_materialization
    metadata = metadata.metadata
    assert metadata["failed"].value == (table["gate_status"] == gate_status.FAILED).sum() == 4
    assert metadata["execution_failed"].value == (table["gate_status"] == gate_status.EXECUTION_FAILED).sum()
    attention = metadata["needs_attention"].value
    assert "bronze/medical_claims landing_reconciles" in attention and PROBLEM in attention
    assert "silver/medical_claims primary_key_unique" in attention
    assert embedded_chart(metadata["states_chart"]) == ("Latest result of every gate, by layer", (800, 350))
    columns = metadata["dagster/column_schema"].value.columns
    assert {c.name for c in columns} == set(table.columns)
    assert all(c.description for c in columns), [c.name for c in columns if not c.description]


def test_the_audit_log_exists_empty_before_the_first_promotion_decision(refused):
    result = refused.pipeline.run(REFUSED_DAY, selection=[MODEL_AUDIT_LOG_KEY])
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert (metadata["decisions"].value, metadata["dagster/row_count"].value) == (0, 0)
    audit = DeltaTable(refused.pipeline.table(*MODEL_AUDIT_LOG_KEY.path))
    assert [field.name for field in audit.schema().fields] == AUDIT_SCHEMA.fieldNames()
    assert check_results(result)[("governance/model_audit_log", "primary_key_unique")].passed
