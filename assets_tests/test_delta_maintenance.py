"""Delta maintenance (OPTIMIZE ... ZORDER BY, VACUUM, table properties) on the engine under test.

On classic Spark these run as Delta SQL, as on Databricks; on Sail through
delta-rs. Every result is checked with an independent reader (delta-rs) and
against the files on disk.
"""

from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from healthcare_assets.resources.delta import TableRef

pytestmark = pytest.mark.engine_fidelity

REF = TableRef("silver", "claims")
SCHEMA = "claim_id long, member_key string, claim_date date, amount double, ingest_date date"
D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def _claims(spark, start: int, count: int, day: date):
    rows = [(i, f"m{i % 7}", date(2025, 12, 1 + i % 28), float(i), day) for i in range(start, start + count)]
    return spark.createDataFrame(rows, SCHEMA)


def _many_small_files(spark, storage):
    """Five commits to one day (appends via MERGE) and one to the next: several small files per partition."""
    storage.replace_days(_claims(spark, 0, 20, D1), REF, D1, D1)
    for batch in range(1, 5):
        storage.merge(
            REF,
            _claims(spark, batch * 20, 20, D1),
            "MERGE INTO {target} USING {source} ON t.claim_id = s.claim_id WHEN NOT MATCHED THEN INSERT *",
        )
    storage.replace_days(_claims(spark, 100, 20, D2), REF, D2, D2)


def _parquet_files_on_disk(storage) -> set[str]:
    root = Path(storage.path(REF))
    # data files only: classic Delta also writes checkpoint parquet files into _delta_log
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def _referenced_files(storage) -> set[str]:
    root = Path(storage.path(REF))
    uris = DeltaTable(storage.path(REF)).file_uris()
    return {str(Path(uri.removeprefix("file://")).relative_to(root)) for uri in uris}


def _content(storage):
    return sorted(tuple(row) for row in storage.read(REF).collect())


def test_optimize_zorders_into_fewer_files_and_keeps_every_row(spark, storage):
    _many_small_files(spark, storage)
    before, rows = storage.files(REF), _content(storage)
    assert before.files == len(DeltaTable(storage.path(REF)).file_uris()) >= 6

    result = storage.optimize(REF, ("member_key", "claim_date"))

    after = storage.files(REF)
    independent = DeltaTable(storage.path(REF))
    assert result.files_removed >= 5 and result.files_added >= 1
    assert after.files == len(independent.file_uris()) == before.files - result.files_removed + result.files_added
    assert after.files < before.files
    assert after.version == before.version + 1 == independent.version()
    assert _content(storage) == rows
    assert storage.history(REF)[0]["operation"] == "OPTIMIZE"


def test_compaction_without_zorder_columns(spark, storage):
    _many_small_files(spark, storage)
    before, rows = storage.files(REF), _content(storage)
    result = storage.optimize(REF)
    assert result.files_removed >= 5
    assert storage.files(REF).files < before.files
    assert _content(storage) == rows


def test_vacuum_keeps_the_retention_window_and_deletes_unreferenced_files_after_it(spark, storage):
    _many_small_files(spark, storage)
    storage.optimize(REF, ("member_key",))
    on_disk, referenced = _parquet_files_on_disk(storage), _referenced_files(storage)
    assert on_disk > referenced  # the compacted files are still on disk

    # the default week keeps them: a reader may still time-travel to the versions before OPTIMIZE
    assert storage.vacuum(REF) == 0
    assert storage.read(REF, version=0).count() == 20

    assert storage.vacuum(REF, retain_hours=0, enforce_retention=False) == len(on_disk - referenced)
    assert _parquet_files_on_disk(storage) == referenced
    assert len(_content(storage)) == 120


def test_zorder_refuses_the_partition_column_and_unknown_columns(spark, storage):
    storage.replace_days(_claims(spark, 0, 5, D1), REF, D1, D1)
    with pytest.raises(ValueError, match="partition column ingest_date"):
        storage.optimize(REF, ("ingest_date",))
    with pytest.raises(ValueError, match="no such column"):
        storage.optimize(REF, ("member_id",))


def test_table_properties_round_trip(spark, storage):
    storage.replace_days(_claims(spark, 0, 5, D1), REF, D1, D1)
    storage.set_properties(REF, {"delta.logRetentionDuration": "interval 30 days", "healthcare.owner": "claims"})
    properties = storage.properties(REF)
    assert properties["delta.logRetentionDuration"] == "interval 30 days"
    assert properties["healthcare.owner"] == "claims"
    assert DeltaTable(storage.path(REF)).metadata().configuration["healthcare.owner"] == "claims"
