"""Parsing and validation of landing files, one record per physical line, as Arrow column expressions.

`parse_landing_table` never drops a line: every data line comes back either
valid (reason null) or with the first rule it breaks, so bronze + quarantine
always reconcile with the landing file. Runs inside Spark (`mapInArrow`) on
whole files and is unit-testable without Spark.

Lines are split once and the rules run on whole columns (pyarrow.compute).
Only lines a plain split cannot read the way Python's `csv` module does (a
quote, a carriage return or NUL inside the line, or a line longer than the csv
field limit), and JSON decoding, go through Python one line at a time.

Problems of a whole file are not row problems: a file that is not UTF-8, a CSV
without a header, or a header that lacks a contract column (schema drift, a
renamed column) would otherwise quarantine every line for one cause.
`landing_file_problem` names such a problem (never the file's contents) and
ingestion refuses the file with `LandingFileRejected` before anything is written.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from healthcare_assets.domain.sources import DATE, DOUBLE, INT, MONEY, Source

SOURCE_FILE = "_source_file"
LINE_NUMBER = "_line_number"
RAW_RECORD = "_raw_record"
REASON = "_quarantine_reason"
METADATA_COLUMNS = (SOURCE_FILE, LINE_NUMBER, RAW_RECORD, REASON)

# Reason kinds, the text before the colon of every quarantine reason.
MALFORMED = "malformed"
MISSING_KEY = "missing_key"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_CODE = "unknown_code"
FUTURE_DATE = "future_date"

# Dropped by every reader that is not UTF-8-aware; a BOM is not part of the first column's name.
BYTE_ORDER_MARK = "\ufeff"

_TYPE_NAMES = {INT: "integer", DOUBLE: "number", MONEY: "amount", DATE: "yyyy-mm-dd date"}
_INT_RE = r"^-?[0-9]+$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class LandingFileRejected(ValueError):
    """A landing file that cannot be ingested as a whole; the message names feed, day, file and problem only."""

    def __init__(self, feed: str, day: date, file_name: str, problem: str):
        self.feed, self.day, self.file_name, self.problem = feed, day, file_name, problem
        super().__init__(
            f"{feed} landing file {file_name} for {day.isoformat()} was rejected: {problem}. "
            "Nothing of this run was written; have the feed redelivered (or fix the contract in domain/sources.py "
            "if the change is intended) and rerun the day."
        )


def header_problem(header: list[str], source: Source) -> str | None:
    """What makes a CSV header unusable for the contract, naming columns only."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        return f"the header repeats column(s) {', '.join(repeated)}"
    missing = [name for name in source.column_names if name not in header]
    if not missing:
        return None  # extra columns are an additive change: ignored
    unexpected = [name for name in header if name not in source.column_names]
    problem = f"the header lacks contract column(s) {', '.join(missing)}"
    if unexpected:
        problem += f" and has unexpected column(s) {', '.join(unexpected)} (renamed?)"
    return problem


def _header(first_line: str) -> list[str]:
    return [name.strip() for name in next(csv.reader([first_line.removeprefix(BYTE_ORDER_MARK)]))]


def landing_file_problem(content: bytes, source: Source) -> str | None:
    """A problem of the file as a whole (encoding, missing header, schema drift), or None when it can be parsed."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        return f"it is not valid UTF-8 (first undecodable byte on line {line}); have it re-exported as UTF-8"
    if source.file_format != "csv":
        return None  # JSON lines carry their keys on every line: a missing one is a row problem
    lines = _split_lines(text)
    if not lines or not lines[0].strip():
        return "it has no header line (an empty delivery is a header-only file)"
    return header_problem(_header(lines[0]), source)


def output_columns(source: Source) -> list[str]:
    return source.column_names + list(METADATA_COLUMNS)


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last record
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# Python's `str.strip` whitespace (all of it lies below U+3001): blanks around a field are not part of it.
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
# Characters after which a plain split on commas no longer reads a line the way `csv.reader` does.
_NOT_PLAIN = '["\r\x00]'
# The decimal forms Arrow's cast and pandas' parser read alike; other text takes pandas' own reading.
_DECIMAL_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# pandas' Timestamp range, which the date rule has always applied: dates outside it are not valid dates.
_FIRST_DATE, _LAST_DATE = date(1677, 9, 22), date(2262, 4, 11)


def _csv_fields(line: str, width: int) -> tuple[list[str] | None, str | None]:
    """One line through Python's csv reader: its fields, or the malformed reason."""
    try:
        fields = next(csv.reader([line], strict=True))
    except csv.Error as error:
        return None, f"{MALFORMED}: {error}"
    if len(fields) != width:
        return None, f"{MALFORMED}: expected {width} fields, found {len(fields)}"
    return fields, None


def _trimmed(values: pa.Array) -> pa.Array:
    """As received, with surrounding blanks removed and empty fields as null."""
    values = pc.utf8_trim(values, characters=_WHITESPACE)
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


def _by_line(parts: list[tuple[np.ndarray, pa.Array]], size: int, dtype: pa.DataType) -> pa.Array:
    """Pieces of a column computed for different sets of lines (line indexes, values), in line order."""
    indexes = np.concatenate([index for index, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
    values = pa.concat_arrays([part.cast(dtype) for _, part in parts]) if parts else pa.array([], dtype)
    order = np.empty(size, dtype=np.int64)
    order[indexes] = np.arange(size)
    return values.take(pa.array(order))


def _csv_columns(header_line: str, lines: list[str], source: Source) -> tuple[dict[str, pa.Array], pa.Array]:
    """Contract columns (strings, null where missing) and malformed reasons of CSV data lines under one header."""
    header = _header(header_line)
    problem = header_problem(header, source)
    if problem is not None:
        raise ValueError(f"{source.name}: {problem}")  # ingestion checks files first: this is a second line of defence
    width = len(header)
    data = pa.array(lines, pa.large_string())
    size = len(data)
    blank = pc.equal(pc.utf8_trim(data, characters=_WHITESPACE), "").to_numpy(zero_copy_only=False)
    special = pc.match_substring_regex(data, _NOT_PLAIN).to_numpy(zero_copy_only=False)
    special |= pc.greater(pc.utf8_length(data), csv.field_size_limit()).to_numpy(zero_copy_only=False)
    plain = np.flatnonzero(~blank & ~special)
    split = pc.split_pattern(data.take(pa.array(plain)), ",")
    counts = pc.list_value_length(split).to_numpy()
    fits = counts == width
    flat = pc.list_flatten(split.filter(pa.array(fits)))
    good = [plain[fits]]
    bad = [plain[~fits], np.flatnonzero(blank)]
    reasons = [
        pa.array([f"{MALFORMED}: expected {width} fields, found {n}" for n in counts[~fits]], pa.string()),
        pa.array([f"{MALFORMED}: blank line"] * int(blank.sum()), pa.string()),
    ]
    # the few lines a split cannot read: one at a time through the csv reader
    read, read_index, failed, failed_index = [], [], [], []
    for index in np.flatnonzero(~blank & special):
        parsed, error = _csv_fields(lines[index], width)
        if parsed is None:
            failed.append(error)
            failed_index.append(index)
        else:
            read.append(parsed)
            read_index.append(index)
    good.append(np.array(read_index, dtype=np.int64))
    bad.append(np.array(failed_index, dtype=np.int64))
    reasons.append(pa.array(failed, pa.string()))
    read_fields = np.array(read, dtype=object).reshape(-1, width)
    missing = sum(len(index) for index in bad)
    columns = {}
    for name in source.column_names:
        position = header.index(name)
        parts = [
            (good[0], flat.take(pa.array(np.arange(position, len(flat), width)))),
            (good[1], pa.array(read_fields[:, position], pa.large_string())),
            (np.concatenate(bad), pa.nulls(missing, pa.large_string())),
        ]
        columns[name] = _trimmed(_by_line(parts, size, pa.large_string()))
    nothing = pa.nulls(sum(len(index) for index in good), pa.string())
    reason = _by_line(
        [(np.concatenate(good), nothing), (np.concatenate(bad), pa.concat_arrays(reasons))], size, pa.string()
    )
    return columns, reason


def _json_text(value: object) -> str | None:
    """A JSON value as the text it was written as (numbers as JSON writes them, true/false, nested as JSON)."""
    kind = type(value)
    if value is None or kind is str:
        return value  # type: ignore[return-value]
    if kind is int or (kind is float and math.isfinite(value)):  # type: ignore[arg-type]
        return repr(value)  # what json.dumps writes for a number, without its overhead
    if kind is bool:
        return "true" if value else "false"
    return json.dumps(value)


def _json_record(line: str) -> tuple[dict | None, str | None]:
    """One JSON line: the object, or the malformed reason."""
    try:
        record = json.loads(line)
    except ValueError as error:
        return None, f"{MALFORMED}: invalid JSON ({error.__class__.__name__})"
    if not isinstance(record, dict):
        return None, f"{MALFORMED}: a line is not a JSON object"
    return record, None


def _jsonl_columns(lines: list[str], source: Source) -> tuple[dict[str, pa.Array], pa.Array]:
    """Contract columns (JSON values as text, null where missing) and malformed reasons of JSON lines."""
    records, reasons = zip(*map(_json_record, lines), strict=True) if lines else ((), ())
    columns = {
        name: _trimmed(
            pa.array([_json_text(r.get(name)) if r is not None else None for r in records], pa.large_string())
        )
        for name in source.column_names
    }
    return columns, pa.array(reasons, pa.string())


class _Rules:
    """The first broken rule of every line, in a fixed order of rules (a line keeps the first it breaks)."""

    def __init__(self, reasons: pa.Array):
        self.reasons = reasons

    def add(self, failing: pa.Array, text: str) -> None:
        # unknown (null) never fails a rule
        fails = pc.and_(pc.is_null(self.reasons), pc.fill_null(failing, False))
        self.reasons = pc.if_else(fails, pa.scalar(text, pa.string()), self.reasons)


def _matches(values: pa.Array, pattern: str) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(values, pattern), False)


def _number(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Numeric value and validity of decimal text (null text: null value, valid)."""
    decimal = _matches(text, _DECIMAL_RE)
    value = pc.cast(pc.if_else(decimal, text, pa.scalar(None, text.type)), pa.float64())
    other = np.flatnonzero(pc.and_(pc.is_valid(text), pc.invert(decimal)).to_numpy(zero_copy_only=False))
    if len(other):  # "N/A", "1,000", "0x10": what pandas makes of them (nothing, for the text seen so far)
        read = pd.to_numeric(pd.Series(text.take(pa.array(other)).to_pylist(), dtype="string"), errors="coerce")
        replaced = value.to_numpy(zero_copy_only=False).copy()
        replaced[other] = read.astype("Float64").fillna(np.nan).to_numpy(dtype=float)
        value = pa.array(replaced, mask=pc.is_null(text).to_numpy(zero_copy_only=False))
    finite = pc.is_finite(value)
    return value, pc.or_(pc.is_null(text), pc.fill_null(finite, False))


def _date(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Calendar date and validity of yyyy-mm-dd text (null text: null value, valid)."""
    shaped = _matches(text, _DATE_RE)
    iso = pc.if_else(shaped, text, pa.scalar("1970-01-01", text.type))
    year, month, day = (
        pc.cast(pc.utf8_slice_codeunits(iso, start, stop), pa.int64()).to_numpy()
        for start, stop in ((0, 4), (5, 7), (8, 10))
    )
    shaped = shaped.to_numpy(zero_copy_only=False)
    month_ok = (month >= 1) & (month <= 12)
    first_of_month = (year - 1970) * 12 + np.where(month_ok, month, 1) - 1
    month_days = (
        (first_of_month + 1).astype("datetime64[M]").astype("datetime64[D]")
        - first_of_month.astype("datetime64[M]").astype("datetime64[D]")
    ).astype(np.int64)
    calendar = shaped & month_ok & (day >= 1) & (day <= month_days)
    days = first_of_month.astype("datetime64[M]").astype("datetime64[D]") + np.where(calendar, day - 1, 0)
    valid = calendar & (days >= np.datetime64(_FIRST_DATE)) & (days <= np.datetime64(_LAST_DATE))
    value = pa.array(days.astype("datetime64[D]"), pa.date32(), mask=~valid)
    return value, pa.array(valid | pc.is_null(text).to_numpy(zero_copy_only=False))


def _validate(columns: dict[str, pa.Array], source: Source, receipt: pa.Array, reasons: pa.Array) -> pa.Array:
    """Adds the first broken rule of every still-valid line, in a fixed order of rules."""
    rules = _Rules(reasons)
    for column in source.columns:
        if column.required:
            rules.add(pc.is_null(columns[column.name]), f"{MISSING_KEY}: {column.name} is empty")
    parsed: dict[str, pa.Array] = {}
    for column in source.columns:
        text = columns[column.name]
        if column.dtype == INT:
            integer = _matches(text, _INT_RE)
            value, ok = _number(pc.if_else(integer, text, pa.scalar(None, text.type)))
            ok = pc.or_(pc.is_null(text), pc.and_(integer, ok))  # digits beyond a double's range are not valid
        elif column.dtype in (DOUBLE, MONEY):
            value, ok = _number(text)
        elif column.dtype == DATE:
            value, ok = _date(text)
        else:
            continue
        parsed[column.name] = value
        rules.add(pc.invert(ok), f"{WRONG_TYPE}: {column.name} is not a valid {_TYPE_NAMES[column.dtype]}")
    for column in source.columns:
        number = parsed.get(column.name)
        if number is None or column.dtype == DATE:
            continue
        if column.min_value is not None:
            rules.add(pc.less(number, column.min_value), f"{OUT_OF_RANGE}: {column.name} below {column.min_value:g}")
        if column.max_value is not None:
            rules.add(pc.greater(number, column.max_value), f"{OUT_OF_RANGE}: {column.name} above {column.max_value:g}")
    for column in source.columns:
        text = columns[column.name]
        if column.allowed is not None:
            known = pc.is_in(text, value_set=pa.array(column.allowed, text.type))
            rules.add(
                pc.and_(pc.is_valid(text), pc.invert(known)), f"{UNKNOWN_CODE}: {column.name} not in the code list"
            )
        if column.pattern is not None:
            rules.add(
                pc.and_(pc.is_valid(text), pc.invert(_matches(text, column.pattern))),
                f"{UNKNOWN_CODE}: {column.name} does not match {column.pattern}",
            )
    for name in source.not_after_receipt:
        rules.add(pc.greater(parsed[name], receipt), f"{FUTURE_DATE}: {name} after the receipt date")
    for earlier, later in source.ordered_dates:
        rules.add(pc.greater(parsed[earlier], parsed[later]), f"{OUT_OF_RANGE}: {later} before {earlier}")
    for amount, ceiling in source.not_above:
        rules.add(pc.greater(parsed[amount], parsed[ceiling]), f"{OUT_OF_RANGE}: {amount} above {ceiling}")
    return rules.reasons


def parse_landing_files(files: Sequence[tuple[str, str, date]], source: Source) -> tuple[pa.Table, pa.Array]:
    """`parse_landing_table` of several files (text, file name, receipt day) at once, the rules running once over
    all their lines (per-call costs do not repeat per file): the rows of every file and each row's receipt day.
    CSV files are parsed together with the files sharing their header line, in order of first appearance."""
    groups: dict[str, list[tuple[list[str], str, date]]] = {}
    for text, file_name, day in files:
        lines = _split_lines(text.removeprefix(BYTE_ORDER_MARK))
        if source.file_format == "csv":
            if lines:  # an empty file has no header and no rows
                groups.setdefault(lines[0], []).append((lines[1:], file_name, day))
        else:
            groups.setdefault("", []).append((lines, file_name, day))
    first_data_line = 2 if source.file_format == "csv" else 1
    tables, days = [], []
    for header_line, members in groups.items():
        lines = [line for data, _, _ in members for line in data]
        sizes = [len(data) for data, _, _ in members]
        receipt = pa.array(np.repeat(np.array([day for _, _, day in members], dtype="datetime64[D]"), sizes))
        if source.file_format == "csv":
            columns, reasons = _csv_columns(header_line, lines, source)
        else:
            columns, reasons = _jsonl_columns(lines, source)
        reasons = _validate(columns, source, receipt, reasons)
        output = {name: columns[name].cast(pa.string()) for name in source.column_names}
        output[SOURCE_FILE] = pa.array(np.repeat(np.array([name for _, name, _ in members], dtype=object), sizes))
        output[LINE_NUMBER] = pa.array(
            np.concatenate([np.arange(first_data_line, first_data_line + n, dtype=np.int64) for n in sizes])
        )
        output[RAW_RECORD] = pa.array(lines, pa.string())
        output[REASON] = reasons.cast(pa.string())
        tables.append(pa.table(output).cast(_output_schema(source)))
        days.append(receipt)
    if not tables:
        return _output_schema(source).empty_table(), pa.array([], pa.date32())
    return pa.concat_tables(tables), pa.concat_arrays(days)


def _output_schema(source: Source) -> pa.Schema:
    return pa.schema([(name, pa.int64() if name == LINE_NUMBER else pa.string()) for name in output_columns(source)])


def parse_landing_table(text: str, source: Source, file_name: str, ingest_date: date) -> pa.Table:
    """One output row per data line: the source columns as received (strings) plus file, line, raw text, reason."""
    return parse_landing_files([(text, file_name, ingest_date)], source)[0]


def parse_landing_file(text: str, source: Source, file_name: str, ingest_date: date) -> pd.DataFrame:
    """`parse_landing_table` as a pandas frame (strings and nulls as Python objects)."""
    return parse_landing_table(text, source, file_name, ingest_date).to_pandas()
