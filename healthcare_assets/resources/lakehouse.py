"""The lakehouse resource (Spark + Delta storage) and the IO manager that stores table assets.

Every table asset's key is ``[schema, table]``; the IO manager maps it to a
Delta table, replaces only the run's daily partitions for partitioned assets,
and reports row count, Delta version, location and column schema.
"""

from datetime import date, timedelta

import dagster as dg
from pyspark.sql import DataFrame

from healthcare_assets import catalog
from healthcare_assets.resources.delta import DeltaStorage, TableRef, day_range_condition
from healthcare_assets.resources.spark import SparkResource


class LakehouseResource(dg.ConfigurableResource):
    """Spark session plus the Delta tables under a root path (local) or a Unity Catalog catalog."""

    spark: SparkResource
    root: str
    landing_root: str
    catalog: str | None = None

    def storage(self) -> DeltaStorage:
        return DeltaStorage(self.spark.get_session(), self.root, self.catalog, engine=self.spark.engine)

    def table_metadata(self, ref: TableRef, start: date | None = None, end: date | None = None) -> dict:
        """What every table materialisation reports: rows, Delta version, location, schema (read from the table)."""
        storage = self.storage()
        frame = storage.read(ref, start, end)
        return self._metadata(ref, frame.count(), frame, storage.version(ref), start, end)

    def written_metadata(self, ref: TableRef, written: DataFrame, start: date | None, end: date | None) -> dict:
        """The same as `table_metadata` for the write just made, without reading the table again: rows and
        version come from the write's Delta commit (both engines record `numOutputRows`)."""
        (commit,) = self.storage().history(ref, limit=1)
        rows = commit["operationMetrics"].get("numOutputRows")
        if rows is None or not _is_the_write_of(commit, start, end):  # not reported, or another run wrote since
            return self.table_metadata(ref, start, end)
        return self._metadata(ref, int(rows), written, commit["version"], start, end)

    def _metadata(
        self, ref: TableRef, rows: int, frame: DataFrame, version: int, start: date | None, end: date | None
    ) -> dict:
        metadata = {
            # standard keys: the UI shows them as the table's row count, name and columns
            "dagster/row_count": dg.MetadataValue.int(rows),
            "dagster/table_name": dg.MetadataValue.text(f"{ref.schema}.{ref.table}"),
            "dagster/column_schema": dg.MetadataValue.table_schema(table_schema(frame)),
            "delta_version": dg.MetadataValue.int(version),
            "location": dg.MetadataValue.text(self.storage().uri(ref)),
        }
        if start is not None and end is not None:
            metadata["partitions"] = dg.MetadataValue.text(
                start.isoformat() if start == end else f"{start.isoformat()}...{end.isoformat()}"
            )
        return metadata


def _is_the_write_of(commit: dict, start: date | None, end: date | None) -> bool:
    """Whether `commit` is the write of these days: a replace carries the days' condition as its predicate (both
    engines record it verbatim); a table's first write and an unpartitioned overwrite carry none."""
    predicate = commit["operationParameters"].get("predicate")
    if start is None or end is None:
        return predicate is None
    return predicate == day_range_condition(start, end) or (predicate is None and commit["version"] == 0)


def table_schema(frame: DataFrame) -> dg.TableSchema:
    """The frame's columns and types, each with its catalog description."""
    return catalog.table_schema((field.name, field.dataType.simpleString()) for field in frame.schema.fields)


def partition_days(context) -> tuple[date, date] | None:
    """First and last day of the partitions in play, or None for an unpartitioned asset."""
    if not context.has_asset_partitions:
        return None
    window = context.asset_partitions_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


class DeltaIOManager(dg.ConfigurableIOManager):
    """Stores Spark DataFrames as Delta tables and loads them back, partition-aware."""

    lakehouse: LakehouseResource

    def handle_output(self, context: dg.OutputContext, obj: DataFrame | None) -> None:
        if obj is None:
            return
        ref = TableRef.from_path(context.asset_key.path)
        storage = self.lakehouse.storage()
        days = partition_days(context)
        if days is None:
            storage.overwrite(obj, ref)
        else:
            storage.replace_days(obj, ref, *days)
        start, end = days or (None, None)
        context.add_output_metadata(self.lakehouse.written_metadata(ref, obj, start, end))

    def load_input(self, context: dg.InputContext) -> DataFrame:
        ref = TableRef.from_path(context.asset_key.path)
        days = partition_days(context)
        storage = self.lakehouse.storage()
        return storage.read(ref) if days is None else storage.read(ref, *days)
