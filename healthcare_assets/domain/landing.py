"""Parsing and validation of landing files, one record per physical line.

`parse_landing_file` never drops a line: every data line comes back either
valid (reason null) or with the first rule it breaks, so bronze + quarantine
always reconcile with the landing file. Runs inside Spark (`mapInPandas`) on
whole files and is unit-testable without Spark.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import date

import numpy as np
import pandas as pd

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
MISSING_COLUMNS = "missing_columns"

_TYPE_NAMES = {INT: "integer", DOUBLE: "number", MONEY: "amount", DATE: "yyyy-mm-dd date"}
_INT_RE = re.compile(r"^-?[0-9]+$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def output_columns(source: Source) -> list[str]:
    return source.column_names + list(METADATA_COLUMNS)


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last record
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse_csv(lines: list[str], source: Source) -> tuple[list[dict | None], list[str | None], str | None]:
    """Rows as dicts (None where the line is malformed), per-line errors, file-level error."""
    if not lines:
        return [], [], None
    header = next(csv.reader([lines[0]]))
    header = [name.strip() for name in header]
    missing = [name for name in source.required_columns if name not in header]
    file_error = f"{MISSING_COLUMNS}: header lacks {', '.join(missing)}" if missing else None
    rows: list[dict | None] = []
    errors: list[str | None] = []
    for line in lines[1:]:
        if not line.strip():
            rows.append(None)
            errors.append(f"{MALFORMED}: blank line")
            continue
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as error:
            rows.append(None)
            errors.append(f"{MALFORMED}: {error}")
            continue
        if len(fields) != len(header):
            rows.append(None)
            errors.append(f"{MALFORMED}: expected {len(header)} fields, found {len(fields)}")
            continue
        rows.append(dict(zip(header, fields, strict=True)))
        errors.append(None)
    return rows, errors, file_error


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _parse_jsonl(lines: list[str]) -> tuple[list[dict | None], list[str | None], str | None]:
    rows: list[dict | None] = []
    errors: list[str | None] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError as error:
            rows.append(None)
            errors.append(f"{MALFORMED}: invalid JSON ({error.__class__.__name__})")
            continue
        if not isinstance(record, dict):
            rows.append(None)
            errors.append(f"{MALFORMED}: a line is not a JSON object")
            continue
        rows.append({name: _json_text(value) for name, value in record.items()})
        errors.append(None)
    return rows, errors, None


def _first_reason(reasons: pd.Series, failing: pd.Series, text: str) -> pd.Series:
    failing = failing.astype("boolean").fillna(False).astype(bool)  # unknown (null) never fails a rule
    return reasons.where(reasons.notna() | ~failing, text)


def _validate(frame: pd.DataFrame, source: Source, ingest_date: date, reasons: pd.Series) -> pd.Series:
    """Adds the first broken rule of every still-valid row, in a fixed order of rules."""
    values = {c.name: frame[c.name] for c in source.columns}
    for column in source.columns:
        if column.required:
            reasons = _first_reason(reasons, values[column.name].isna(), f"{MISSING_KEY}: {column.name} is empty")
    parsed: dict[str, pd.Series] = {}
    for column in source.columns:
        text = values[column.name]
        present = text.notna()
        if column.dtype == INT:
            ok = text.str.match(_INT_RE).fillna(False).astype(bool)
            parsed[column.name] = pd.to_numeric(text.where(ok), errors="coerce")
        elif column.dtype in (DOUBLE, MONEY):
            number = pd.to_numeric(text, errors="coerce")
            ok = number.notna() & np.isfinite(number.fillna(0.0))
            parsed[column.name] = number
        elif column.dtype == DATE:
            as_date = pd.to_datetime(
                text.where(text.str.match(_DATE_RE).fillna(False).astype(bool)), format="%Y-%m-%d", errors="coerce"
            )
            ok = as_date.notna()
            parsed[column.name] = as_date
        else:
            continue
        reasons = _first_reason(
            reasons, present & ~ok, f"{WRONG_TYPE}: {column.name} is not a valid {_TYPE_NAMES[column.dtype]}"
        )
    for column in source.columns:
        number = parsed.get(column.name)
        if number is None or column.dtype == DATE:
            continue
        if column.min_value is not None:
            reasons = _first_reason(
                reasons, number < column.min_value, f"{OUT_OF_RANGE}: {column.name} below {column.min_value:g}"
            )
        if column.max_value is not None:
            reasons = _first_reason(
                reasons, number > column.max_value, f"{OUT_OF_RANGE}: {column.name} above {column.max_value:g}"
            )
    for column in source.columns:
        text = values[column.name]
        if column.allowed is not None:
            unknown = text.notna() & ~text.isin(column.allowed)
            reasons = _first_reason(reasons, unknown, f"{UNKNOWN_CODE}: {column.name} not in the code list")
        if column.pattern is not None:
            unknown = text.notna() & ~text.str.match(column.pattern).fillna(False).astype(bool)
            reasons = _first_reason(reasons, unknown, f"{UNKNOWN_CODE}: {column.name} does not match {column.pattern}")
    receipt = pd.Timestamp(ingest_date)
    for name in source.not_after_receipt:
        reasons = _first_reason(reasons, parsed[name] > receipt, f"{FUTURE_DATE}: {name} after the receipt date")
    for earlier, later in source.ordered_dates:
        reasons = _first_reason(reasons, parsed[earlier] > parsed[later], f"{OUT_OF_RANGE}: {later} before {earlier}")
    return reasons


def parse_landing_file(text: str, source: Source, file_name: str, ingest_date: date) -> pd.DataFrame:
    """One output row per data line: the source columns as received (strings) plus metadata."""
    lines = _split_lines(text)
    if source.file_format == "csv":
        rows, errors, file_error = _parse_csv(lines, source)
        first_data_line = 2
    else:
        rows, errors, file_error = _parse_jsonl(lines)
        first_data_line = 1
    records = [row or {} for row in rows]
    frame = (
        pd.DataFrame.from_records(records, columns=source.column_names)
        if records
        else pd.DataFrame(columns=source.column_names)
    )
    frame = frame.astype(object)
    for name in source.column_names:
        # as received, with surrounding blanks removed and empty fields as null
        column = frame[name].astype("string").str.strip()
        frame[name] = column.mask(column == "")
    reasons = pd.Series(errors, dtype=object, index=frame.index)
    if file_error is not None:
        reasons = reasons.where(reasons.notna(), file_error)
    if len(frame):
        frame[list(source.column_names)] = frame[list(source.column_names)].astype("string")
        reasons = _validate(frame, source, ingest_date, reasons)
    frame = frame.astype(object).where(frame.notna(), None)
    frame[SOURCE_FILE] = file_name
    frame[LINE_NUMBER] = np.arange(first_data_line, first_data_line + len(frame), dtype="int64")
    frame[RAW_RECORD] = lines[first_data_line - 1 :]
    frame[REASON] = reasons.astype(object).where(reasons.notna(), None)
    return frame[output_columns(source)]
