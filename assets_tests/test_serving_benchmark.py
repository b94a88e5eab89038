"""The serving benchmark measures a real scoring server over HTTP, and its section renders what it measured."""

import json

import mlflow.pyfunc
import pandas as pd

from benchmarks.report import render
from benchmarks.serving import measure_endpoint, percentile, serving_section
from healthcare_assets.resources.serving import LocalScoringServer


class _Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"fraud_score": model_input["amount"] * 2.0})


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([3.0], 0.99) == 3.0


def test_the_section_renders_latency_and_throughput_measured_against_the_scoring_server(tmp_path):
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(str(model_dir), python_model=_Doubler())
    server = LocalScoringServer(str(model_dir))
    rows = [{"amount": float(i)} for i in range(20)]
    try:
        assert server.invoke(rows[:2]) == [{"fraud_score": 0.0}, {"fraud_score": 2.0}]
        model = mlflow.pyfunc.load_model(str(model_dir))
        measured = measure_endpoint(server.invoke, lambda b: model.predict(pd.DataFrame(b)), rows, 30, [10])
    finally:
        server.stop()
    single = measured["single_record"]
    assert 0 < single["p50_ms"] <= single["p99_ms"] and single["requests"] == 30
    (batch,) = measured["batches"]
    assert batch["batch_size"] == 10 and batch["records_per_second"] > 0

    results = tmp_path / "results"
    results.mkdir()
    record = {"label": "tiny", "built_days": 4, "claims_per_day": 200, "measured_at": "2026-01-05T00:00:00+00:00"}
    record["machine"] = {"cores": 2, "python": "3.11", "load_average_at_start": [0.5, 0.4, 0.3]}
    endpoint = {"model": "claims_fraud_autoencoder", "version": "1", "champion": False, **measured}
    (results / "serving_tiny.json").write_text(json.dumps({**record, "endpoints": {"fraud": endpoint}}))

    lines, data = serving_section(results)
    text = "\n".join(lines)
    assert f"| fraud | 1 (newest, no champion yet) | {single['p50_ms']} | {single['p99_ms']} |" in text
    assert f"| fraud | 10 | {batch['records_per_second']:,} |" in text
    assert data["tiny"]["endpoints"]["fraud"]["single_record"] == single
    markdown, rendered = render(results)
    assert "## 8. Real-time scoring (local endpoint)" in markdown and rendered["serving"] == data


def test_without_measurements_the_section_says_how_to_measure(tmp_path):
    lines, data = serving_section(tmp_path)
    assert data == {} and "_not yet measured_: `python -m benchmarks.serving`" in "\n".join(lines)
