"""The storage layer against real Delta tables on disk, read back with delta-rs."""

from datetime import date

import pytest
from deltalake import DeltaTable

from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.spark import SparkResource

# also run on classic Spark + delta-spark (the Databricks engine) by `make test`
pytestmark = pytest.mark.engine_fidelity

REF = TableRef("silver", "example")
SCHEMA = "id long, value string, ingest_date date"
D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def _rows(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def _content(storage, ref=REF):
    return sorted(tuple(r) for r in storage.read(ref).select("id", "value", "ingest_date").collect())


def test_replacing_a_day_keeps_the_other_days_and_is_idempotent(spark, storage):
    storage.replace_days(_rows(spark, [(1, "a", D1), (2, "b", D2), (3, "c", D3)]), REF, D1, D3)
    rerun = _rows(spark, [(20, "b2", D2), (21, "b3", D2)])
    storage.replace_days(rerun, REF, D2, D2)
    storage.replace_days(rerun, REF, D2, D2)
    assert _content(storage) == [(1, "a", D1), (3, "c", D3), (20, "b2", D2), (21, "b3", D2)]
    table = DeltaTable(storage.path(REF))
    assert table.version() == 2
    assert table.metadata().partition_columns == ["ingest_date"]


def test_rows_outside_the_replaced_range_are_never_written(spark, storage):
    storage.replace_days(_rows(spark, [(1, "a", D1)]), REF, D1, D1)
    storage.replace_days(_rows(spark, [(2, "b", D2), (99, "stray", D1)]), REF, D2, D2)
    assert _content(storage) == [(1, "a", D1), (2, "b", D2)]


def test_an_empty_day_clears_that_day_only(spark, storage):
    storage.replace_days(_rows(spark, [(1, "a", D1), (2, "b", D2)]), REF, D1, D2)
    storage.replace_days(_rows(spark, []), REF, D2, D2)
    assert _content(storage) == [(1, "a", D1)]


def test_overwrite_replaces_table_and_schema(spark, storage):
    storage.overwrite(_rows(spark, [(1, "a", D1)]), REF)
    storage.overwrite(spark.createDataFrame([(5,)], "other long"), REF)
    assert storage.read(REF).columns == ["other"]
    assert storage.version(REF) == 1


def test_merge_updates_matches_and_inserts_new_rows(spark, storage):
    storage.merge(
        REF,
        _rows(spark, [(1, "a", D1), (2, "b", D1)]),
        "MERGE INTO {target} USING {source} ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
    )
    storage.merge(
        REF,
        _rows(spark, [(2, "B", D2), (3, "c", D2)]),
        "MERGE INTO {target} USING {source} ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
    )
    assert _content(storage) == [(1, "a", D1), (2, "B", D2), (3, "c", D2)]
    operations = [entry["operation"] for entry in storage.history(REF)]
    assert operations[0] == "MERGE"


def test_time_travel_reads_an_earlier_version(spark, storage):
    storage.replace_days(_rows(spark, [(1, "a", D1)]), REF, D1, D1)
    storage.replace_days(_rows(spark, [(2, "b", D1)]), REF, D1, D1)
    assert [r["id"] for r in storage.read(REF, version=0).collect()] == [1]
    assert [r["id"] for r in storage.read(REF).collect()] == [2]


def test_reading_a_missing_table_says_what_to_do(storage):
    with pytest.raises(FileNotFoundError, match="materialise it first"):
        storage.read(TableRef("gold", "nothing_here"))


def test_count_by_day(spark, storage):
    storage.replace_days(_rows(spark, [(1, "a", D1), (2, "b", D2), (3, "c", D2)]), REF, D1, D2)
    assert storage.count_by_day(REF, D1, D3) == {D1: 1, D2: 2}


def test_deployed_tables_are_addressed_by_their_unity_catalog_name(tmp_path):
    deployed = DeltaStorage(spark=None, root=str(tmp_path), catalog="healthcare_prod")
    assert deployed.qualified_name(REF) == "healthcare_prod.silver.example"
    assert deployed.uri(REF) == "healthcare_prod.silver.example"


def test_local_tables_are_addressed_by_path(storage):
    assert storage.qualified_name(REF) == f"delta.`{storage.path(REF)}`"
    assert storage.uri(REF).startswith("file://") and storage.uri(REF).endswith("/silver/example")


def _lakehouse(storage: DeltaStorage) -> LakehouseResource:
    return LakehouseResource(spark=SparkResource(engine=storage.engine), root=storage.root, landing_root=storage.root)


def test_write_metadata_comes_from_the_commit_and_equals_what_the_table_holds(spark, storage):
    lakehouse = _lakehouse(storage)
    first = _rows(spark, [(1, "a", D1), (2, "b", D1), (3, "c", D2)])
    storage.replace_days(first, REF, D1, D2)
    assert lakehouse.written_metadata(REF, first, D1, D2) == lakehouse.table_metadata(REF, D1, D2)
    again = _rows(spark, [(4, "d", D2), (5, "e", D2)])
    storage.replace_days(again, REF, D2, D2)
    written = lakehouse.written_metadata(REF, again, D2, D2)
    assert written == lakehouse.table_metadata(REF, D2, D2)
    assert (written["dagster/row_count"].value, written["delta_version"].value) == (2, 1)


def test_write_metadata_counts_the_table_when_another_write_came_after(spark, storage):
    lakehouse = _lakehouse(storage)
    day_one = _rows(spark, [(1, "a", D1), (2, "b", D1), (3, "c", D1)])
    storage.replace_days(day_one, REF, D1, D1)
    storage.replace_days(_rows(spark, [(9, "z", D2)]), REF, D2, D2)  # a concurrent run's day lands first
    written = lakehouse.written_metadata(REF, day_one, D1, D1)
    assert written["dagster/row_count"].value == 3  # not the newest commit's single row
    assert written == lakehouse.table_metadata(REF, D1, D1)
