"""The per-line landing parser the vectorised one replaced, kept as the oracle of its equivalence test.

One Python `csv`/`json` call per line and pandas string rules: slow, but simple enough to read as the
specification. `assets_tests/test_landing_equivalence.py` requires identical rows from both.
"""

from __future__ import annotations

import csv
import json
from datetime import date

import numpy as np
import pandas as pd

from healthcare_assets.domain.landing import (
    _DATE_RE,
    _INT_RE,
    _TYPE_NAMES,
    BYTE_ORDER_MARK,
    FUTURE_DATE,
    LINE_NUMBER,
    MALFORMED,
    MISSING_KEY,
    OUT_OF_RANGE,
    RAW_RECORD,
    REASON,
    SOURCE_FILE,
    UNKNOWN_CODE,
    WRONG_TYPE,
    _header,
    _split_lines,
    header_problem,
    output_columns,
)
from healthcare_assets.domain.sources import DATE, DOUBLE, INT, MONEY, Source


def _parse_csv(lines: list[str], source: Source) -> tuple[list[dict | None], list[str | None]]:
    """Rows as dicts (None where the line is malformed) and per-line errors; a file-level problem raises."""
    if not lines:
        return [], []
    header = _header(lines[0])
    problem = header_problem(header, source)
    if problem is not None:
        raise ValueError(f"{source.name}: {problem}")  # ingestion checks files first: this is a second line of defence
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
    return rows, errors


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _parse_jsonl(lines: list[str]) -> tuple[list[dict | None], list[str | None]]:
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
    return rows, errors


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
            integer = pd.to_numeric(text.where(text.str.match(_INT_RE).fillna(False).astype(bool)), errors="coerce")
            ok = integer.notna()  # digits beyond 64 bits do not convert: not a valid integer either
            parsed[column.name] = integer
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
    for amount, ceiling in source.not_above:
        reasons = _first_reason(reasons, parsed[amount] > parsed[ceiling], f"{OUT_OF_RANGE}: {amount} above {ceiling}")
    return reasons


def parse_landing_file(text: str, source: Source, file_name: str, ingest_date: date) -> pd.DataFrame:
    """One output row per data line: the source columns as received (strings) plus metadata."""
    lines = _split_lines(text.removeprefix(BYTE_ORDER_MARK))
    if source.file_format == "csv":
        rows, errors = _parse_csv(lines, source)
        first_data_line = 2
    else:
        rows, errors = _parse_jsonl(lines)
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
    if len(frame):
        frame[list(source.column_names)] = frame[list(source.column_names)].astype("string")
        reasons = _validate(frame, source, ingest_date, reasons)
    frame = frame.astype(object).where(frame.notna(), None)
    frame[SOURCE_FILE] = file_name
    frame[LINE_NUMBER] = np.arange(first_data_line, first_data_line + len(frame), dtype="int64")
    frame[RAW_RECORD] = lines[first_data_line - 1 :]
    frame[REASON] = reasons.astype(object).where(reasons.notna(), None)
    return frame[output_columns(source)]
