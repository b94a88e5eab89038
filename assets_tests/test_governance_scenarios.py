"""Governance scenario (c): drift in the landing data fails the drift gates and requests ONE retraining run.

The real code location runs in a real Dagster instance over a throw-away lakehouse: clean days landing -> gold ->
monitoring, then drifted days; the drift sensor is evaluated against the same instance and alerts a local HTTP
receiver standing in for Slack.
"""

import json
import threading
from dataclasses import dataclass
from datetime import date
from http.server import ThreadingHTTPServer

import dagster as dg
import pytest
from deltalake import DeltaTable

from assets_tests.pipeline import SMALL_DATA, Pipeline, check_results, materialized
from assets_tests.receivers import Receiver
from healthcare_assets.assets.monitoring import TRAILING_HISTORY_FEATURES
from healthcare_assets.domain import drift
from healthcare_assets.resources.alerts import AlertsResource

CLEAN_START, CLEAN_END = date(2026, 1, 1), date(2026, 1, 8)  # the first 7 days are the reference window
DRIFT_START, DRIFT_END = date(2026, 1, 9), date(2026, 1, 10)
PSI_GATE = ("monitoring/psi_metrics", "psi_within_limits")
COMPOSITE_GATE = ("monitoring/drift_summary", "composite_drift_within_limit")

# More claims per day than SMALL_DATA: a daily PSI over ~40 procedure codes needs a few hundred claims to stay
# below the gate on clean days (sampling noise alone adds about (bins - 1) / rows). A severe drift (amounts x4,
# the acute-care claim mix, far more claims from older members): the composite score is a weighted mean, so a
# drift that only fails the per-feature PSI gate (strength 1) stays below its threshold.
SCENARIO_DATA = {
    **SMALL_DATA,
    "claims_per_day": 400,
    "drift_start": DRIFT_START.isoformat(),
    "drift_strength": 4.0,
}


def read_delta(path: str):
    return DeltaTable(path).to_pandas()


@dataclass
class Scenario:
    pipeline: Pipeline
    clean: dg.ExecuteInProcessResult
    drifted: dg.ExecuteInProcessResult
    ticks: list[dg.SensorResult]  # after the clean days, after the drifted days, once more
    alerts: list  # requests the Slack stand-in received


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("governance"), synthetic=SCENARIO_DATA)
    sensor = pipeline.defs.resolve_sensor_def("drift_retraining_sensor")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests, server.failures_first = [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    alerts = AlertsResource(
        channels=["slack"], slack_webhook_url=f"http://127.0.0.1:{server.server_port}/hook", backoff_seconds=0.01
    )
    ticks: list[dg.SensorResult] = []

    def tick() -> None:
        cursor = ticks[-1].cursor if ticks else None
        context = dg.build_sensor_context(
            instance=pipeline.instance, cursor=cursor, definitions=pipeline.defs, resources={"alerts": alerts}
        )
        ticks.append(sensor(context))

    try:
        clean = pipeline.run(CLEAN_START, CLEAN_END)
        tick()
        drifted = pipeline.run(DRIFT_START, DRIFT_END)
        tick()
        tick()
    finally:
        server.shutdown()
        server.server_close()
    return Scenario(pipeline, clean, drifted, ticks, server.requests)


def test_clean_days_pass_the_drift_gates(scenario):
    assert scenario.clean.success
    assert {"monitoring/psi_metrics", "monitoring/drift_summary"} <= materialized(scenario.clean)
    checks = check_results(scenario.clean)
    assert checks[PSI_GATE].passed and checks[COMPOSITE_GATE].passed
    assert checks[PSI_GATE].metadata["max_psi"].value < drift.PSI_ERROR
    assert checks[COMPOSITE_GATE].metadata["performance_drift"].value == 0.0


def test_drifted_days_fail_the_psi_and_composite_gates(scenario):
    checks = check_results(scenario.drifted)
    psi_gate, composite_gate = checks[PSI_GATE], checks[COMPOSITE_GATE]
    assert not psi_gate.passed and psi_gate.severity == dg.AssetCheckSeverity.ERROR
    assert psi_gate.metadata["days_over_threshold"].value == 2
    assert not composite_gate.passed
    assert composite_gate.metadata["max_composite_score"].value > drift.COMPOSITE_ERROR
    # the composite gate blocks: the run fails, nothing downstream of the drift summary would run
    assert not scenario.drifted.success

    psi = read_delta(scenario.pipeline.table("monitoring", "psi_metrics"))
    assert sorted(psi["ingest_date"].unique()) == [date(2026, 1, d) for d in range(1, 11)]
    assert set(psi["reference_start"]) == {CLEAN_START} and set(psi["reference_end"]) == {date(2026, 1, 7)}
    gated = psi[psi["gated"]]
    drifted_days = gated[gated["ingest_date"] >= DRIFT_START]
    amount = drifted_days[drifted_days["feature"] == "claim_amount"]
    assert (amount["psi"] >= drift.PSI_ERROR).all() and set(amount["status"]) == {drift.ERROR}
    assert gated[gated["ingest_date"] < DRIFT_START]["psi"].max() < drift.PSI_ERROR
    # trailing-history features grow with the young history: reported, not gated
    assert set(psi.loc[~psi["gated"], "feature"]) == set(TRAILING_HISTORY_FEATURES)
    bins = json.loads(amount["bins"].iloc[0])
    assert sum(bins["current_counts"]) == amount["current_rows"].iloc[0] and len(bins["edges"]) == 9

    summary = read_delta(scenario.pipeline.table("monitoring", "drift_summary"))
    assert (summary["performance_available"] == False).all()  # noqa: E712 (a pandas column)
    assert set(summary.loc[summary["ingest_date"] >= DRIFT_START, "status"]) == {drift.ERROR}
    assert set(summary.loc[summary["ingest_date"] < DRIFT_START, "status"]) == {drift.OK}


def test_drift_sensor_requests_one_retraining_run_and_alerts_once(scenario):
    first, second, third = scenario.ticks
    assert first.run_requests == []  # clean days: nothing to retrain
    [request] = second.run_requests
    assert scenario.pipeline.defs.resolve_sensor_def("drift_retraining_sensor").job_name == "model_retraining"
    assert request.tags["healthcare/failed_check"] == "monitoring/drift_summary:composite_drift_within_limit"
    assert request.tags["healthcare/check_run_id"] == scenario.drifted.run_id
    [(path, _, body)] = scenario.alerts
    assert path == "/hook" and "composite_drift_within_limit failed" in body["text"]
    assert "*max_composite_score*" in body["blocks"][1]["text"]["text"]
    assert third.run_requests == []  # the same failure never requests twice
