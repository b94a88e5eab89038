"""Landing files -> bronze rows (as received) and quarantine rows (with the reason)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import pandas as pd
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
    parse_landing_file,
)
from healthcare_assets.domain.sources import Source
from healthcare_assets.resources.delta import PARTITION_COLUMN

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


def union_all(frames: list[DataFrame]) -> DataFrame:
    """Unions the frames pairwise, in order: a plan log2(n) deep rather than n deep.

    A linear chain of one union per file nests the Spark Connect plan past protobuf's
    recursion limit after a few dozen days ("Error parsing message with type
    'spark.connect.Relation'"), which broke backfills of a quarter of a year.
    """
    while len(frames) > 1:
        frames = [
            frames[i].unionByName(frames[i + 1]) if i + 1 < len(frames) else frames[i] for i in range(0, len(frames), 2)
        ]
    return frames[0]


def parse_landing(spark: SparkSession, landing_root: str, source: Source, days: list[date]) -> DataFrame:
    """Every landing data line of the days as a row: source columns as strings + file, line, raw text, reason.

    Each file is read whole (one row per file) and parsed by the domain parser
    inside Spark, so the line numbers and raw text of bad rows are kept.
    """
    frames = []
    for day in days:
        for path in landing_files(landing_root, source, day):
            frames.append(
                spark.read.text(path, wholetext=True).select(
                    F.col("value"),
                    F.lit(Path(path).name).alias(SOURCE_FILE),
                    F.lit(day).cast("date").alias(PARTITION_COLUMN),
                )
            )
    files = union_all(frames)

    columns = output_columns(source)

    def parse(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for text, file_name, ingest_day in zip(
                batch["value"], batch[SOURCE_FILE], batch[PARTITION_COLUMN], strict=True
            ):
                parsed = parse_landing_file(text, source, file_name, ingest_day)
                if len(parsed):  # a header-only file has no rows (and no column types to convert)
                    parsed[PARTITION_COLUMN] = ingest_day
                    yield parsed[columns + [PARTITION_COLUMN]]

    return files.mapInPandas(parse, _parsed_schema(source))


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
