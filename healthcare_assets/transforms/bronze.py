"""Landing files -> bronze rows (as received) and quarantine rows (with the reason)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from healthcare_assets.domain.landing import (
    LINE_NUMBER,
    RAW_RECORD,
    REASON,
    SOURCE_FILE,
    LandingFileRejected,
    landing_file_problem,
    output_columns,
    parse_landing_files,
)
from healthcare_assets.domain.sources import Source
from healthcare_assets.resources.delta import PARTITION_COLUMN

# Landing text parsed in one go inside a task: the rules' per-call costs are paid once for many small files.
PARSE_CHUNK_BYTES = 64 * 2**20

QUARANTINE_COLUMNS = ("source", PARTITION_COLUMN, SOURCE_FILE, LINE_NUMBER, RAW_RECORD, "reason", "_ingested_at")


class LandingFilesMissing(FileNotFoundError):
    """A day's landing folder has no file for a feed."""


def landing_files(landing_root: str, source: Source, day: date) -> list[str]:
    folder = Path(landing_root) / source.name / day.isoformat()
    files = sorted(str(p) for p in folder.glob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise LandingFilesMissing(
            f"no {source.name} landing file for {day.isoformat()} in {folder}: "
            "the feed has not arrived (or the landing asset was not materialised for this day)"
        )
    return files


def landed_days(landing_root: str, source: Source) -> list[date]:
    """Every day that has a landing folder for the feed, oldest first."""
    folder = Path(landing_root) / source.name
    return sorted(date.fromisoformat(p.name) for p in folder.glob("????-??-??") if p.is_dir())


def check_landing_files(landing_root: str, source: Source, days: list[date]) -> int:
    """Raises `LandingFileRejected` for the first file that cannot be ingested as a whole; returns the files checked."""
    checked = 0
    for day in days:
        for path in landing_files(landing_root, source, day):
            problem = landing_file_problem(Path(path).read_bytes(), source)
            if problem is not None:
                raise LandingFileRejected(source.name, day, Path(path).name, problem)
            checked += 1
    return checked


def count_landing_lines(landing_root: str, source: Source, day: date) -> int:
    """Data lines delivered for a day (header lines excluded), counted independently of the parser."""
    total = 0
    header_lines = 1 if source.file_format == "csv" else 0
    for path in landing_files(landing_root, source, day):
        with open(path, "rb") as handle:
            content = handle.read()
        lines = content.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        total += max(len(lines) - header_lines, 0)
    return total


def _parsed_schema(source: Source) -> StructType:
    fields = [StructField(name, StringType()) for name in source.column_names]
    fields += [
        StructField(SOURCE_FILE, StringType()),
        StructField(LINE_NUMBER, LongType()),
        StructField(RAW_RECORD, StringType()),
        StructField(REASON, StringType()),
        StructField(PARTITION_COLUMN, DateType()),
    ]
    return StructType(fields)


def parse_landing(spark: SparkSession, landing_root: str, source: Source, days: list[date]) -> DataFrame:
    """Every landing data line of the days as a row: source columns as strings + file, line, raw text, reason.

    Spark gets one row per file (its path) and the domain parser reads and parses each file whole inside
    Spark as Arrow columns (`mapInArrow`: no per-row Python), so the line numbers and raw text of bad rows
    are kept. The file is read by the parser rather
    than with Spark's `wholetext` reader: Sail splits a file of more than about a megabyte into several
    "whole" texts, whose second half would parse with a data line as its header. Workers read the same
    paths the driver lists (a local folder, or a Unity Catalog volume mounted on every node).
    """
    paths = [(path, Path(path).name, day) for day in days for path in landing_files(landing_root, source, day)]
    files = spark.createDataFrame(paths, f"path string, {SOURCE_FILE} string, {PARTITION_COLUMN} date")
    # one task per file up to the engine's parallelism: files parse side by side
    parallelism = int(spark.conf.get("spark.sql.shuffle.partitions") or 1)
    files = files.repartition(max(1, min(len(paths), parallelism)))

    columns = output_columns(source)

    def parsed(chunk: list[tuple[str, str, date]]) -> Iterator[pa.RecordBatch]:
        table, days = parse_landing_files(chunk, source)
        yield from table.select(columns).append_column(PARTITION_COLUMN, days).to_batches()

    def parse(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # the files of a task are parsed together, up to PARSE_CHUNK_BYTES of text at a time
        chunk: list[tuple[str, str, date]] = []
        size = 0
        for batch in batches:
            files = batch.to_pydict()
            for path, file_name, day in zip(files["path"], files[SOURCE_FILE], files[PARTITION_COLUMN], strict=True):
                # bytes as stored (line endings untouched); check_landing_files has already proven them UTF-8
                text = Path(path).read_bytes().decode("utf-8")
                chunk.append((text, file_name, day))
                size += len(text)
                if size >= PARSE_CHUNK_BYTES:
                    yield from parsed(chunk)
                    chunk, size = [], 0
        if chunk:
            yield from parsed(chunk)

    return files.mapInArrow(parse, _parsed_schema(source))


def bronze_rows(parsed: DataFrame, source: Source) -> DataFrame:
    """Valid rows as received plus ingest metadata."""
    return parsed.where(F.col(REASON).isNull()).select(
        *source.column_names,
        SOURCE_FILE,
        LINE_NUMBER,
        F.current_timestamp().alias("_ingested_at"),
        PARTITION_COLUMN,
    )


def quarantine_rows(parsed: DataFrame, source: Source) -> DataFrame:
    """Rows that could not be parsed or broke a rule, with the raw line and the reason."""
    return parsed.where(F.col(REASON).isNotNull()).select(
        F.lit(source.name).alias("source"),
        PARTITION_COLUMN,
        SOURCE_FILE,
        LINE_NUMBER,
        RAW_RECORD,
        F.col(REASON).alias("reason"),
        F.current_timestamp().alias("_ingested_at"),
    )
