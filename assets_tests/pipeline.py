"""Runs the real code location in a real Dagster instance for the end-to-end tests."""

import os
from datetime import date
from pathlib import Path

import dagster as dg

from healthcare_assets.definitions import build_definitions
from healthcare_assets.settings import load_settings

# The engine the suite runs on: `make test` runs it on Sail, then the engine_fidelity tests on classic Spark.
TEST_ENGINE = os.environ.get("SPARK_ENGINE", "sail")
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Small enough for seconds per run, large enough for every fraud pattern and bad-record kind.
SMALL_DATA = {
    "num_members": 300,
    "num_providers": 40,
    "claims_per_day": 80,
    "rx_claims_per_day": 40,
    "immunizations_per_day": 10,
    "bad_record_rate": 0.05,
}


class Pipeline:
    """The code location over a throw-away lakehouse, with one Dagster instance for all its runs."""

    def __init__(self, root: Path, synthetic: dict | None = None, engine: str = TEST_ENGINE):
        self.settings = load_settings({"LAKEHOUSE_ROOT": str(root), "SPARK_ENGINE": engine})
        self.defs = build_definitions(self.settings)
        self.instance = dg.DagsterInstance.ephemeral()
        self.synthetic = {**SMALL_DATA, **(synthetic or {})}

    def medallion_assets(self) -> list[dg.AssetKey]:
        """Landing through gold, without the tables a model writes (what the engines must agree on)."""
        layers = dg.AssetSelection.groups("landing", "bronze", "silver", "gold")
        model_outputs = dg.AssetSelection.groups("fraud", "risk").downstream()
        return sorted((layers - model_outputs).resolve(self.defs.resolve_asset_graph()), key=str)

    def data_assets(self) -> list[dg.AssetKey]:
        """Every asset but the fraud models, their scores and fairness (small data is too thin to train on), and
        the serving endpoints (test_serving.py)."""
        fraud = [
            k
            for k in self.defs.resolve_all_asset_keys()
            if k.path[0] in ("fraud", "governance", "serving") or "fraud_scores" in k.path[-1]
        ]
        return [k for k in self.defs.resolve_all_asset_keys() if k not in fraud]

    def run(
        self,
        start: date,
        end: date | None = None,
        selection: list[dg.AssetKey] | None = None,
        op_config: dict | None = None,
    ):
        """Materialises `selection` (default: `data_assets()`) for start..end in one run; `op_config` adds run
        config of other ops (e.g. training knobs)."""
        end = end or start
        selection = self.data_assets() if selection is None else selection
        job = self.defs.resolve_implicit_global_asset_job_def()
        return job.execute_in_process(
            instance=self.instance,
            tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
            run_config={"ops": {"synthetic_landing_feeds": {"config": self.synthetic}, **(op_config or {})}},
            asset_selection=selection,
            raise_on_error=False,
        )

    def table(self, schema: str, table: str) -> str:
        return str(Path(self.settings.lakehouse_root) / schema / table)


def check_results(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """(asset path, check name) -> evaluation, for every check the run evaluated."""
    return {("/".join(e.asset_key.path), e.check_name): e for e in result.get_asset_check_evaluations()}


def materialized(result) -> set[str]:
    return {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}


def run_checks(pipeline: Pipeline, start: date, end: date | None = None, job: str = "data_quality_checks"):
    """Re-evaluates every data-quality gate over stored tables through the `data_quality_checks` job."""
    end = end or start
    return pipeline.defs.resolve_job_def(job).execute_in_process(
        instance=pipeline.instance,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        raise_on_error=False,
    )
