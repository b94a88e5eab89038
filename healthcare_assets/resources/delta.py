"""The one place that reads and writes Delta tables.

Asset code never touches paths, table names or engine quirks: it asks this
module to read a table (optionally a range of daily partitions), replace a
range of daily partitions, overwrite a table or merge into it. Engine
differences are handled here:

* Sail does not enforce ``replaceWhere`` (it deletes the matching rows and
  writes every row given), so the frame is always filtered to the range first;
  the result is one atomic commit on every engine.
* Local tables are addressed by path and their history read with delta-rs;
  deployed tables by their Unity Catalog name and ``DESCRIBE HISTORY``.
"""

import functools
import logging
import random
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession

PARTITION_COLUMN = "ingest_date"

# Delta's optimistic concurrency: another writer committed the version this write was based on.
# Sail says "Failed to commit transaction" (or, listing a log another writer is extending, "Missing commit
# file"); Delta on Spark/Databricks names the conflict.
WRITE_CONFLICT_MARKERS = (
    "Failed to commit transaction",
    "Missing commit file",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DELTA_CONCURRENT_",
)
WRITE_ATTEMPTS = 6
_log = logging.getLogger(__name__)


class DeltaWriteConflict(RuntimeError):
    """Concurrent writers kept winning: the write was retried and still conflicts."""


def is_write_conflict(error: BaseException) -> bool:
    return any(marker in str(error) or marker in type(error).__name__ for marker in WRITE_CONFLICT_MARKERS)


def retried_on_conflict(write):
    """Re-runs a whole write when a concurrent commit won; each write here is safe to repeat
    (it replaces a range, overwrites or merges against the table's latest version)."""

    @functools.wraps(write)
    def retrying(self, *args, **kwargs):
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return write(self, *args, **kwargs)
            except Exception as error:
                if not is_write_conflict(error):
                    raise
                if attempt == WRITE_ATTEMPTS:
                    raise DeltaWriteConflict(
                        f"{write.__name__} lost {WRITE_ATTEMPTS} commits in a row to concurrent writers of the "
                        "same table; rerun when the other runs have finished"
                    ) from error
                delay = 0.1 * 2**attempt * (1 + random.random())  # noqa: S311 (jitter, not security)
                _log.warning(f"{write.__name__}: concurrent Delta commit, retry {attempt} in {delay:.1f}s")
                time.sleep(delay)

    return retrying


@dataclass(frozen=True)
class TableRef:
    schema: str
    table: str

    @classmethod
    def from_path(cls, parts: list[str] | tuple[str, ...]) -> "TableRef":
        if len(parts) != 2:
            raise ValueError(f"a table asset key has two parts (schema, table), got {list(parts)}")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


def day_range_condition(start: date, end: date, column: str = PARTITION_COLUMN) -> str:
    return f"{column} >= DATE'{start.isoformat()}' AND {column} <= DATE'{end.isoformat()}'"


class DeltaStorage:
    """Delta tables under a local root (by path) or in a Unity Catalog catalog (by name)."""

    def __init__(self, spark: SparkSession, root: str, catalog: str | None = None):
        self.spark = spark
        self.root = root
        self.catalog = catalog

    # -- addressing -------------------------------------------------------
    def path(self, ref: TableRef) -> str:
        return str(Path(self.root) / ref.schema / ref.table)

    def qualified_name(self, ref: TableRef) -> str:
        """SQL identifier of the table, usable in MERGE/DELETE on every engine."""
        if self.catalog:
            return f"{self.catalog}.{ref.schema}.{ref.table}"
        return f"delta.`{self.path(ref)}`"

    def uri(self, ref: TableRef) -> str:
        return f"{self.catalog}.{ref.schema}.{ref.table}" if self.catalog else Path(self.path(ref)).as_uri()

    def exists(self, ref: TableRef) -> bool:
        if self.catalog:
            return self.spark.catalog.tableExists(f"{self.catalog}.{ref.schema}.{ref.table}")
        return (Path(self.path(ref)) / "_delta_log").is_dir() and any(
            (Path(self.path(ref)) / "_delta_log").glob("*.json")
        )

    # -- reads --------------------------------------------------------------
    def read(
        self, ref: TableRef, start: date | None = None, end: date | None = None, version: int | None = None
    ) -> DataFrame:
        if not self.exists(ref):
            raise FileNotFoundError(f"Delta table {ref} does not exist yet: materialise it first")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        frame = reader.table(self.qualified_name(ref)) if self.catalog else reader.load(self.path(ref))
        if start is not None and end is not None:
            frame = frame.where(day_range_condition(start, end))
        return frame

    # -- writes -------------------------------------------------------------
    def _save(self, writer, ref: TableRef) -> None:
        if self.catalog:
            writer.saveAsTable(f"{self.catalog}.{ref.schema}.{ref.table}")
        else:
            writer.save(self.path(ref))

    @retried_on_conflict
    def replace_days(self, frame: DataFrame, ref: TableRef, start: date, end: date) -> None:
        """Atomically replace the daily partitions start..end with the frame's rows of that range."""
        frame = frame.where(day_range_condition(start, end))
        if not self.exists(ref):
            self._save(frame.write.format("delta").mode("overwrite").partitionBy(PARTITION_COLUMN), ref)
            return
        writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", day_range_condition(start, end))
        self._save(writer, ref)

    @retried_on_conflict
    def overwrite(self, frame: DataFrame, ref: TableRef) -> None:
        writer = frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        self._save(writer, ref)

    @retried_on_conflict
    def merge(self, ref: TableRef, source: DataFrame, merge_sql: str) -> None:
        """Runs `MERGE INTO {target} AS t USING {source} AS s ...`; creates the table from the source when absent."""
        if not self.exists(ref):
            self.overwrite(source, ref)
            return
        view = f"merge_source_{ref.schema}_{ref.table}"
        source.createOrReplaceTempView(view)
        self.spark.sql(merge_sql.format(target=f"{self.qualified_name(ref)} AS t", source=f"{view} AS s"))

    # -- table facts --------------------------------------------------------
    def version(self, ref: TableRef) -> int:
        if self.catalog:
            row = self.spark.sql(f"DESCRIBE HISTORY {self.qualified_name(ref)} LIMIT 1").first()
            return int(row["version"])
        from deltalake import DeltaTable

        return DeltaTable(self.path(ref)).version()

    def history(self, ref: TableRef) -> list[dict]:
        if self.catalog:
            return [row.asDict() for row in self.spark.sql(f"DESCRIBE HISTORY {self.qualified_name(ref)}").collect()]
        from deltalake import DeltaTable

        return DeltaTable(self.path(ref)).history()

    def count(self, ref: TableRef, start: date | None = None, end: date | None = None) -> int:
        return self.read(ref, start, end).count()

    def count_by_day(self, ref: TableRef, start: date, end: date, where: Column | None = None) -> dict[date, int]:
        frame = self.read(ref, start, end)
        if where is not None:
            frame = frame.where(where)
        rows = frame.groupBy(PARTITION_COLUMN).count().collect()
        return {row[PARTITION_COLUMN]: row["count"] for row in rows}
