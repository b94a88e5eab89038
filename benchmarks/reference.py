"""Reference implementation: the same landing -> bronze -> silver -> gold.claim_features work in DuckDB, one process.

Written from the feature definitions (docs and the feed contracts in domain/sources.py), not from the pipeline's
code: SQL over the landing files' lines, so the side-by-side benchmark can say how far each medallion step of the
pipeline is from what a fast single-node engine does with the same rows, and a test can require identical rows.

    python -m benchmarks.reference --landing-root ROOT --start 2026-01-01 --end 2026-03-31 [--out reference.json]

Steps (each writes its tables as Parquet, as the pipeline writes Delta):
* bronze: every line of every feed's files of the window, valid or quarantined with the first rule it breaks;
* silver: medical claims and enrolment records typed, deduplicated, member ids pseudonymised (HMAC-SHA256),
  and the SCD type 2 member dimension;
* gold: claim_features for every claim of the window.

Scope: the generated feeds. A CSV line holding a quote is quarantined as malformed (the generator never quotes),
and JSON numbers keep DuckDB's spelling (the pharmacy feed feeds no claim feature).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from benchmarks.measure import PYTHON, run_measured
from benchmarks.pipeline import Lakehouse
from benchmarks.scales import Scale
from healthcare_assets.domain.landing import _WHITESPACE, BYTE_ORDER_MARK
from healthcare_assets.domain.privacy import hmac_pads
from healthcare_assets.domain.sources import (
    DATE,
    DOUBLE,
    INT,
    MEDICAL_CLAIMS,
    MEMBER_ELIGIBILITY,
    MONEY,
    SOURCES,
    Source,
)
from healthcare_assets.settings import pseudonymisation_key

FEATURE_WINDOW_DAYS = 90  # a claim's features look at claims received in the 90 days up to its own day
SHORT_WINDOW_DAYS = 30
MAX_REPORTED_AGE = 90  # birth years fold ages over 89 together
ASSUMED_BIRTH_MONTH = 7  # ages assume a birthday on 1 July of the birth year
FIRST_VALID_DATE, LAST_VALID_DATE = "1677-09-22", "2262-04-11"
_SQL_TYPES = {INT: "INTEGER", DOUBLE: "DOUBLE", MONEY: "DECIMAL(12,2)", DATE: "DATE"}
_TYPE_NAMES = {INT: "integer", DOUBLE: "number", MONEY: "amount", DATE: "yyyy-mm-dd date"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _landing_lines(landing_root: str, source: Source, days: list[date]) -> tuple[pa.Table, list[str] | None]:
    """Every line of the feed's files of the days (file, day, line number, text) and the CSV header."""
    files, file_days, numbers, texts = [], [], [], []
    header = None
    for day in days:
        folder = Path(landing_root) / source.name / day.isoformat()
        for path in sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")):
            lines = path.read_text(encoding="utf-8").removeprefix(BYTE_ORDER_MARK).split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            lines = [line.removesuffix("\r") for line in lines]
            first = 1
            if source.file_format == "csv":
                file_header = [name.strip() for name in lines[0].split(",")] if lines else []
                if header is not None and file_header != header:
                    raise ValueError(f"{path.name}: the reference reads one header layout per feed")
                header, lines, first = file_header, lines[1:], 2
            files += [path.name] * len(lines)
            file_days += [day] * len(lines)
            numbers += range(first, first + len(lines))
            texts += lines
    table = pa.table(
        {
            "_source_file": pa.array(files, pa.string()),
            "ingest_date": pa.array(file_days, pa.date32()),
            "_line_number": pa.array(numbers, pa.int64()),
            "_raw_record": pa.array(texts, pa.string()),
        }
    )
    return table, header


# Python's str.strip whitespace as an RE2 class; a field is trimmed only when it starts or ends with one
# (DuckDB's trim with a character list is much slower than the test).
_BLANK = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE) + "]"


def _trimmed(text: str) -> str:
    edges = f"'^{_BLANK}+|{_BLANK}+$'"
    return f"CASE WHEN regexp_matches({text}, '^{_BLANK}|{_BLANK}$') THEN regexp_replace({text}, {edges}, '', 'g') ELSE {text} END"


def _field_sql(source: Source, header: list[str] | None) -> tuple[str, dict[str, str]]:
    """The malformed-line reason and each contract column's text (trimmed, empty as null) of a raw line."""
    if source.file_format == "csv":
        assert header is not None
        width = len(header)
        malformed = (
            f"CASE WHEN regexp_full_match(_raw_record, '{_BLANK}*') THEN 'malformed: blank line' "
            "WHEN contains(_raw_record, '\"') THEN 'malformed: quoted field' "
            f"WHEN len(_f) <> {width} THEN 'malformed: expected {width} fields, found ' || len(_f) END"
        )
        texts = {name: f"_f[{header.index(name) + 1}]" for name in source.column_names}
    else:
        malformed = (
            "CASE WHEN _j IS NULL THEN 'malformed: invalid JSON (JSONDecodeError)' "
            "WHEN json_type(_j) <> 'OBJECT' THEN 'malformed: a line is not a JSON object' END"
        )
        texts = {name: f"json_extract_string(_j, {_quote('$.' + name)})" for name in source.column_names}
    return malformed, {name: f"nullif({_trimmed(text)}, '')" for name, text in texts.items()}


def _rules_sql(source: Source) -> str:
    """The first broken rule of a line, in the contract's order of rules, as one CASE expression."""
    rules = ["WHEN _malformed IS NOT NULL THEN _malformed"]
    rules += [f"WHEN {c.name} IS NULL THEN 'missing_key: {c.name} is empty'" for c in source.columns if c.required]
    for c in source.columns:
        if c.dtype == INT:
            valid = f"regexp_full_match({c.name}, '-?[0-9]+') AND isfinite(TRY_CAST({c.name} AS DOUBLE))"
        elif c.dtype in (DOUBLE, MONEY):
            valid = f"isfinite(TRY_CAST({c.name} AS DOUBLE))"
        elif c.dtype == DATE:
            valid = (
                f"regexp_full_match({c.name}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND TRY_CAST({c.name} AS DATE) "
                f"BETWEEN DATE '{FIRST_VALID_DATE}' AND DATE '{LAST_VALID_DATE}'"
            )
        else:
            continue
        reason = f"wrong_type: {c.name} is not a valid {_TYPE_NAMES[c.dtype]}"
        rules.append(f"WHEN {c.name} IS NOT NULL AND NOT coalesce({valid}, false) THEN '{reason}'")
    for c in source.columns:
        if c.dtype not in (INT, DOUBLE, MONEY):
            continue
        number = f"TRY_CAST({c.name} AS DOUBLE)"
        if c.min_value is not None:
            rules.append(f"WHEN {number} < {c.min_value} THEN 'out_of_range: {c.name} below {c.min_value:g}'")
        if c.max_value is not None:
            rules.append(f"WHEN {number} > {c.max_value} THEN 'out_of_range: {c.name} above {c.max_value:g}'")
    for c in source.columns:
        if c.allowed is not None:
            codes = ", ".join(_quote(code) for code in c.allowed)
            rules.append(f"WHEN {c.name} NOT IN ({codes}) THEN 'unknown_code: {c.name} not in the code list'")
        if c.pattern is not None:
            rules.append(
                f"WHEN NOT regexp_full_match({c.name}, {_quote(c.pattern)}) "
                f"THEN {_quote(f'unknown_code: {c.name} does not match {c.pattern}')}"
            )
    for name in source.not_after_receipt:
        rules.append(f"WHEN TRY_CAST({name} AS DATE) > ingest_date THEN 'future_date: {name} after the receipt date'")
    for earlier, later in source.ordered_dates:
        rules.append(
            f"WHEN TRY_CAST({earlier} AS DATE) > TRY_CAST({later} AS DATE) "
            f"THEN 'out_of_range: {later} before {earlier}'"
        )
    for amount, ceiling in source.not_above:
        rules.append(
            f"WHEN TRY_CAST({amount} AS DOUBLE) > TRY_CAST({ceiling} AS DOUBLE) "
            f"THEN 'out_of_range: {amount} above {ceiling}'"
        )
    return "CASE " + " ".join(rules) + " END"


def bronze(con: duckdb.DuckDBPyConnection, landing_root: str, source: Source, days: list[date]) -> None:
    """Tables bronze_<feed> (valid lines, values as received) and quarantine_<feed> (line, raw text, reason)."""
    lines, header = _landing_lines(landing_root, source, days)
    con.register("_lines", lines)
    malformed, texts = _field_sql(source, header)
    # a CSV line's fields, a JSON line's value (null when it is not JSON)
    split = "string_split(_raw_record, ',') AS _f" if source.file_format == "csv" else "try(json(_raw_record)) AS _j"
    columns = ", ".join(f"{text} AS {name}" for name, text in texts.items())
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT *, {_rules_sql(source)} AS reason FROM (
            SELECT _source_file, ingest_date, _line_number, _raw_record, {columns}, {malformed} AS _malformed
            FROM (SELECT *, {split} FROM _lines))"""
    )
    names = ", ".join(source.column_names)
    con.execute(
        f"CREATE OR REPLACE TABLE bronze_{source.name} AS SELECT {names}, _source_file, _line_number, ingest_date "
        "FROM _parsed WHERE reason IS NULL"
    )
    con.execute(
        f"CREATE OR REPLACE TABLE quarantine_{source.name} AS SELECT ingest_date, _source_file, _line_number, "
        "_raw_record, reason FROM _parsed WHERE reason IS NOT NULL"
    )
    con.unregister("_lines")


def _pseudonym_sql(value: str, key: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) of the value's UTF-8 bytes, hex encoded."""
    pads = hmac_pads(key)
    inner = f"unhex(sha256(unhex('{pads.inner_hex}') || encode({value})))"
    return f"sha256(unhex('{pads.outer_hex}') || {inner})"


def _typed_sql(source: Source) -> str:
    return ", ".join(
        f"CAST({c.name} AS {_SQL_TYPES[c.dtype]}) AS {c.name}" if c.dtype in _SQL_TYPES else c.name
        for c in source.columns
    )


def silver(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """silver_medical_claims, silver_member_eligibility and dim_members from the bronze tables."""
    key_columns = ", ".join(MEDICAL_CLAIMS.key)
    con.execute(
        f"""CREATE OR REPLACE TABLE silver_medical_claims AS
        SELECT * EXCLUDE (member_id, patient_dob, _rank), {_pseudonym_sql("member_id", key)} AS member_key
        FROM (SELECT {_typed_sql(MEDICAL_CLAIMS)}, _source_file, _line_number, ingest_date,
                     row_number() OVER (PARTITION BY {key_columns} ORDER BY _source_file, _line_number) AS _rank
              FROM bronze_medical_claims)
        WHERE _rank = 1"""
    )
    eligibility_key = ", ".join(MEMBER_ELIGIBILITY.key)
    con.execute(
        f"""CREATE OR REPLACE TABLE silver_member_eligibility AS
        SELECT * EXCLUDE (member_id, first_name, last_name, date_of_birth, street_address, city, zip_code, _rank),
               greatest(year(date_of_birth), year(ingest_date) - {MAX_REPORTED_AGE}) AS birth_year,
               {_pseudonym_sql("member_id", key)} AS member_key,
               concat_ws('|', street_address, city, zip_code) AS _address
        FROM (SELECT {_typed_sql(MEMBER_ELIGIBILITY)}, _source_file, _line_number, ingest_date,
                     row_number() OVER (PARTITION BY {eligibility_key} ORDER BY _source_file, _line_number) AS _rank
              FROM bronze_member_eligibility)
        WHERE _rank = 1"""
    )
    # A record takes effect on its start date (its end date for a TERM); the last received of a member's day wins;
    # consecutive records with the same attributes are one version, valid until the day before the next.
    con.execute(
        """CREATE OR REPLACE TABLE dim_members AS
        WITH records AS (
            SELECT *, CASE WHEN maintenance_type = 'TERM' THEN 'terminated' ELSE 'active' END AS enrollment_status,
                   CASE WHEN maintenance_type = 'TERM' THEN eligibility_end_date ELSE eligibility_start_date END
                       AS effective_from
            FROM silver_member_eligibility
            QUALIFY row_number() OVER (PARTITION BY member_key, effective_from
                                       ORDER BY ingest_date DESC, _source_file DESC, _line_number DESC) = 1
        ), changes AS (
            SELECT *, struct_pack(gender, birth_year, geographic_region, plan_code, _address, bmi, smoker,
                                  enrollment_status) AS _attributes
            FROM records
            QUALIFY lag(_attributes) OVER (PARTITION BY member_key ORDER BY effective_from) IS DISTINCT FROM _attributes
        )
        SELECT member_key, row_number() OVER w AS version, gender, birth_year, geographic_region, plan_code,
               effective_from, lead(effective_from) OVER w - 1 AS effective_to,
               lead(effective_from) OVER w IS NULL AS is_current_record
        FROM changes WINDOW w AS (PARTITION BY member_key ORDER BY effective_from)"""
    )


def claim_features(con: duckdb.DuckDBPyConnection) -> None:
    """gold_claim_features: one row per silver claim, from the claims received in its window and the dimension."""
    window = f"h.ingest_date <= c.ingest_date AND h.ingest_date > c.ingest_date - {FEATURE_WINDOW_DAYS}"
    short = f"h.ingest_date > c.ingest_date - {SHORT_WINDOW_DAYS}"
    received_before = (
        "(h.ingest_date < c.ingest_date OR (h.ingest_date = c.ingest_date AND (h.service_start_date < "
        "c.service_start_date OR (h.service_start_date = c.service_start_date AND h.claim_id < c.claim_id))))"
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE gold_claim_features AS
        WITH c AS (SELECT * FROM silver_medical_claims),
        received_days AS (
            SELECT c.ingest_date, count(*) FILTER (WHERE {short}) AS short_days, count(*) AS history_days
            FROM (SELECT DISTINCT ingest_date FROM c) c JOIN (SELECT DISTINCT ingest_date FROM c) h ON {window}
            GROUP BY c.ingest_date
        ), member_history AS (
            SELECT c.claim_id, count(*) FILTER (WHERE {short}) AS short_claims, count(*) AS window_claims,
                   avg(CAST(h.claim_amount AS DOUBLE)) AS member_mean, max(h.service_start_date) AS last_service
            FROM c JOIN c h ON h.member_key = c.member_key AND {window} AND {received_before}
            GROUP BY c.claim_id
        ), visits AS (
            SELECT c.claim_id, count(*) AS lines_same_visit,
                   count(*) FILTER (WHERE {received_before} AND h.procedure_code = c.procedure_code)
                       AS identical_claims_before
            FROM c JOIN c h ON h.member_key = c.member_key AND h.provider_id = c.provider_id
                           AND h.service_start_date = c.service_start_date AND {window}
            GROUP BY c.claim_id
        ), prices AS (
            SELECT procedure_code, ingest_date,
                   sum(CASE WHEN claim_amount > 0 THEN ln(CAST(claim_amount AS DOUBLE)) END) AS log_sum, count(*) AS n
            FROM c GROUP BY ALL
        ), typical AS (
            SELECT c.claim_id, exp(sum(h.log_sum) / sum(h.n)) AS typical_amount
            FROM c JOIN prices h ON h.procedure_code = c.procedure_code AND {window}
            GROUP BY c.claim_id
        ), pairs AS (
            SELECT diagnosis_code, procedure_code, ingest_date, count(*) AS n FROM c GROUP BY ALL
        ), coding AS (
            SELECT c.claim_id,
                   sum(CASE WHEN h.procedure_code = c.procedure_code THEN h.n ELSE 0 END) / sum(h.n) AS share
            FROM c JOIN pairs h ON h.diagnosis_code = c.diagnosis_code AND {window}
            GROUP BY c.claim_id
        ), demographics AS (
            SELECT c.claim_id, m.gender, m.birth_year, m.geographic_region, m.plan_code
            FROM c LEFT JOIN dim_members m ON m.member_key = c.member_key
            QUALIFY row_number() OVER (
                PARTITION BY c.claim_id
                ORDER BY coalesce(m.effective_from <= c.service_start_date
                                  AND (m.effective_to IS NULL OR c.service_start_date <= m.effective_to), false) DESC,
                         m.version ASC NULLS LAST) = 1
        ), features AS (
            SELECT c.*, d.gender AS patient_gender, d.geographic_region, d.plan_code,
                   greatest(year(c.service_start_date) - d.birth_year
                            - CASE WHEN month(c.service_start_date) < {ASSUMED_BIRTH_MONTH} THEN 1 ELSE 0 END, 0)
                       AS patient_age,
                   CASE WHEN mh.last_service IS NOT NULL
                        THEN greatest(date_diff('day', mh.last_service, c.service_start_date), 0) END
                       AS days_since_last_claim,
                   round(coalesce(mh.short_claims, 0) * {SHORT_WINDOW_DAYS} / r.short_days, 4) AS claim_rate_30d,
                   round(coalesce(mh.window_claims, 0) * {FEATURE_WINDOW_DAYS} / r.history_days, 4) AS claim_rate_90d,
                   CASE WHEN mh.member_mean > 0 THEN round(CAST(c.claim_amount AS DOUBLE) / mh.member_mean, 4) END
                       AS amount_to_member_mean,
                   r.history_days,
                   date_diff('day', c.service_start_date, c.service_end_date) AS claim_duration_days,
                   v.identical_claims_before, v.lines_same_visit,
                   round(CAST(c.claim_amount AS DOUBLE) / t.typical_amount, 4) AS amount_to_procedure_typical,
                   round(g.share, 4) AS procedure_share_for_diagnosis
            FROM c
            LEFT JOIN member_history mh USING (claim_id)
            LEFT JOIN received_days r USING (ingest_date)
            LEFT JOIN visits v USING (claim_id)
            LEFT JOIN typical t USING (claim_id)
            LEFT JOIN coding g USING (claim_id)
            LEFT JOIN demographics d USING (claim_id)
        )
        SELECT claim_id, member_key, provider_id, service_start_date AS claim_date, claim_amount,
               CAST(patient_age AS INTEGER) AS patient_age, provider_experience_years,
               CAST(days_since_last_claim AS INTEGER) AS days_since_last_claim,
               CAST(claim_rate_30d AS DOUBLE) AS claim_rate_30d, CAST(claim_rate_90d AS DOUBLE) AS claim_rate_90d,
               amount_to_member_mean, CAST(history_days AS INTEGER) AS history_days,
               CAST(claim_duration_days AS INTEGER) AS claim_duration_days,
               CAST(identical_claims_before AS INTEGER) AS identical_claims_before,
               CAST(lines_same_visit AS INTEGER) AS lines_same_visit,
               amount_to_procedure_typical, procedure_share_for_diagnosis,
               claim_type, provider_specialty, diagnosis_code, procedure_code, patient_gender, geographic_region,
               CASE WHEN patient_age < 18 THEN '0-17' WHEN patient_age < 35 THEN '18-34'
                    WHEN patient_age < 50 THEN '35-49' WHEN patient_age < 65 THEN '50-64'
                    WHEN patient_age >= 65 THEN '65+' END AS patient_age_group,
               plan_code, ingest_date
        FROM features"""
    )


# The pipeline's steps doing each step's work, in its end-to-end backfill (benchmarks/pipeline.py).
PIPELINE_STEPS = {
    "bronze": ["bronze_ingestion"],
    "silver": ["silver__medical_claims", "silver__member_eligibility", "silver__dim_members"],
    "gold": ["gold__claim_features"],
}
RATIO_TARGET = 3.0  # each pipeline step within 3x of the reference's time for the same rows

STEPS = {
    "bronze": ["bronze_" + name for name in SOURCES] + ["quarantine_" + name for name in SOURCES],
    "silver": ["silver_medical_claims", "silver_member_eligibility", "dim_members"],
    "gold": ["gold_claim_features"],
}


def run(con: duckdb.DuckDBPyConnection, landing_root: str, days: list[date], key: bytes, out_dir: Path) -> dict:
    """The three steps, each timed with the Parquet writes of its tables; returns seconds and rows per step."""
    work = {
        "bronze": lambda: [bronze(con, landing_root, source, days) for source in SOURCES.values()],
        "silver": lambda: silver(con, key),
        "gold": lambda: claim_features(con),
    }
    steps = {}
    for step, tables in STEPS.items():
        started = time.perf_counter()
        work[step]()
        for table in tables:
            con.execute(f"COPY {table} TO '{out_dir / table}.parquet' (FORMAT parquet)")
        seconds = time.perf_counter() - started
        rows = {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in tables}
        steps[step] = {"seconds": round(seconds, 3), "rows": rows}
    return steps


def side_by_side(pipeline_run: dict, reference_steps: dict) -> list[dict]:
    """Per medallion step: the pipeline's step time (its end-to-end run) beside the reference's, and the ratio."""
    timings = {step["step"]: step for step in pipeline_run["steps"]}
    rows = []
    for step, names in PIPELINE_STEPS.items():
        measured = [timings[name] for name in names if name in timings]
        seconds = sum(timing["seconds"] for timing in measured)
        ours = reference_steps[step]
        rows.append(
            {
                "step": step,
                "pipeline_steps": names,
                "pipeline_seconds": round(seconds, 3),
                "pipeline_rows": sum(timing["rows"] or 0 for timing in measured),
                "reference_seconds": ours["seconds"],
                "reference_rows": sum(ours["rows"].values()),
                "ratio": round(seconds / ours["seconds"], 2) if ours["seconds"] and measured else None,
            }
        )
    return rows


# The pipeline's assets doing the same work, materialised on their own for the comparison (the whole graph's
# backfill also trains models and runs governance gates that can stop it).
MEDALLION_SELECTION = (
    'group:landing or group:bronze or key:"silver/medical_claims" or key:"silver/member_eligibility" '
    'or key:"silver/dim_members" or key:"gold/claim_features" or key:"gold/member_claims_daily" '
    'or key:"gold/procedure_prices_daily" or key:"gold/coding_pairs_daily"'
)


def measure(scale: Scale, work: Path, progress) -> dict:
    """The pipeline's medallion assets over the scale's window through the Dagster CLI on a fresh lakehouse, then
    the reference in its own process on the same landing files; the section record with both and the ratios."""
    lakehouse = Lakehouse(work / "reference")
    start, end = scale.day(1), scale.day(scale.history_days)
    progress(f"reference: the pipeline's medallion assets over {start}...{end}, then DuckDB on the same files")
    pipeline_run = lakehouse.materialize(scale, start, end, "medallion", progress, MEDALLION_SELECTION)
    out = work / f"reference_{scale.name}.json"
    args = ["--landing-root", str(lakehouse.root / "lakehouse" / "landing"), "--start", str(start), "--end", str(end)]
    process = run_measured(
        [PYTHON, "-m", "benchmarks.reference", *args, "--out", str(out)], lakehouse.env, work / "reference.log"
    )
    if process.returncode != 0:
        raise RuntimeError(f"benchmarks.reference failed (exit {process.returncode})\n{process.log_tail}")
    record = json.loads(out.read_text())
    record.update(
        {
            "scale": scale.name,
            "window": f"{start}...{end}",
            "peak_tree_rss_mib": round(process.peak_tree_rss_bytes / 2**20, 1),
            "pipeline_run": {k: v for k, v in pipeline_run.items() if k != "steps"},
            "side_by_side": side_by_side(pipeline_run, record["steps"]),
        }
    )
    for row in record["side_by_side"]:
        progress(
            f"  {row['step']}: pipeline {row['pipeline_seconds']} s / reference {row['reference_seconds']} s = {row['ratio']}"
        )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing-root", required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, help="JSON record of the steps (default: print it)")
    parser.add_argument("--repeats", type=int, default=1, help="runs to take the fastest of")
    args = parser.parse_args()
    days = [args.start + timedelta(days=n) for n in range((args.end - args.start).days + 1)]
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="reference-") as out_dir, duckdb.connect() as con:
            runs.append(run(con, args.landing_root, days, pseudonymisation_key("local"), Path(out_dir)))
    best = min(runs, key=lambda steps: sum(step["seconds"] for step in steps.values()))
    record = {"engine": f"duckdb {duckdb.__version__}", "days": len(days), "repeats": args.repeats, "steps": best}
    text = json.dumps(record, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
