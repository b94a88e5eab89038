"""The delta_maintenance job over every table a pipeline run wrote (OPTIMIZE, Z-order, VACUUM per table).

The per-operation semantics on each engine are in test_delta_maintenance.py (both engines); this job test
runs on the suite's engine only: on classic local Spark its ~20 tables x (OPTIMIZE + VACUUM) take a quarter
of an hour of JVM jobs and prove nothing the operation tests do not.
"""

from datetime import date
from pathlib import Path

from deltalake import DeltaTable

from assets_tests.pipeline import Pipeline
from healthcare_assets.automation.maintenance import delta_tables

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def test_maintenance_job_observes_every_table_with_files_before_and_after(tmp_path):
    pipeline = Pipeline(tmp_path, synthetic={"num_members": 60, "claims_per_day": 20, "rx_claims_per_day": 10})
    medallion = pipeline.medallion_assets()
    assert pipeline.run(D1, selection=medallion).success
    # the second day merges its enrolment changes: more files in dim_members
    assert pipeline.run(D2, selection=medallion).success
    rows_before = {key: len(DeltaTable(pipeline.table(*key.path)).to_pyarrow_table()) for key in _tables(pipeline)}

    result = pipeline.defs.resolve_job_def("delta_maintenance").execute_in_process(instance=pipeline.instance)

    assert result.success
    observations = {
        e.asset_key: e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert set(observations) == set(_tables(pipeline))
    for key, metadata in observations.items():
        table = DeltaTable(pipeline.table(*key.path))
        assert metadata["files_after"].value == len(table.file_uris()), key
        assert metadata["files_after"].value <= metadata["files_before"].value, key
        assert metadata["version_after"].value == table.version(), key
        assert metadata["files_vacuumed"].value == 0, key  # nothing is older than the week it keeps
        assert len(table.to_pyarrow_table()) == rows_before[key], key
    claims = observations[pipeline.defs.resolve_assets_def(["silver", "medical_claims"]).key]
    assert claims["zorder_by"].value == "member_key, service_start_date"
    assert sum(m["files_compacted"].value for m in observations.values()) > 0


def _tables(pipeline):
    """The Delta tables of the code location that the test's runs materialised (the job skips the others)."""
    declared = delta_tables(list(pipeline.defs.resolve_asset_graph().assets_defs))
    return {key: zorder for key, zorder in declared.items() if Path(pipeline.table(*key.path)).exists()}
