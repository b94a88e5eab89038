"""Section 6: the silver medical_claims cleaning on the embedded Sail engine vs a pandas implementation.

`transforms.silver.medical_claims` (typed columns, first delivery per claim_id by file and
line, member id replaced by its keyed HMAC pseudonym, direct identifiers dropped) against the
same cleaning written with pandas (pyarrow for the column casts), both reading the stored
bronze Delta table and writing a Delta table. The two results are checked equal (same rows,
same values, same types) before anything is timed.

    python -m benchmarks.sail_vs_pandas --lakehouse DIR --out FILE
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from healthcare_assets.domain.landing import LINE_NUMBER, SOURCE_FILE
from healthcare_assets.domain.privacy import pseudonymise
from healthcare_assets.domain.sources import DATE, DOUBLE, INT, MEDICAL_CLAIMS, MONEY
from healthcare_assets.resources.delta import PARTITION_COLUMN, DeltaStorage, TableRef
from healthcare_assets.resources.spark import get_session
from healthcare_assets.settings import load_settings, pseudonymisation_key
from healthcare_assets.transforms import silver

BRONZE = TableRef("bronze", "medical_claims")
_ARROW_TYPES = {INT: pa.int32(), DOUBLE: pa.float64(), MONEY: pa.decimal128(12, 2), DATE: pa.date32()}


def pandas_medical_claims(bronze: pd.DataFrame, key: bytes) -> pa.Table:
    """silver.medical_claims in pandas: the same columns, types and rows."""
    first = bronze.sort_values([SOURCE_FILE, LINE_NUMBER], kind="stable").drop_duplicates("claim_id", keep="first")
    first = first.assign(member_key=[pseudonymise(member_id, key) for member_id in first["member_id"]])
    kept = [c.name for c in MEDICAL_CLAIMS.columns if not c.phi]
    leading = ["claim_id", "member_key"]
    ordered = [*leading, *[c for c in kept if c not in leading], SOURCE_FILE, LINE_NUMBER, PARTITION_COLUMN]
    table = pa.Table.from_pandas(first[ordered], preserve_index=False)
    for column in MEDICAL_CLAIMS.columns:
        if column.dtype in _ARROW_TYPES and column.name in ordered:
            values = first[column.name].replace("", None)  # an empty optional field is null, as Spark casts it
            index = table.schema.get_field_index(column.name)
            typed = pa.array(values, type=pa.string()).cast(_ARROW_TYPES[column.dtype])
            table = table.set_column(index, column.name, typed)
    return table


def same_table(from_sail: pa.Table, from_pandas: pa.Table) -> bool:
    """Same columns in the same order, same types, same rows and values (in claim order)."""
    if from_sail.column_names != from_pandas.column_names:
        return False
    try:
        from_pandas = from_pandas.cast(from_sail.schema)  # aligns nullability flags; a type mismatch raises
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return False
    return from_sail.sort_by("claim_id").equals(from_pandas.sort_by("claim_id"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = load_settings({"LAKEHOUSE_ROOT": args.lakehouse, "SPARK_ENGINE": "sail"})
    key = pseudonymisation_key(settings.environment, environ={})
    storage = DeltaStorage(get_session("sail"), settings.lakehouse_root)
    bronze_path = storage.path(BRONZE)

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        sail_out = TableRef("scratch", "sail_medical_claims")
        sail_storage = DeltaStorage(storage.spark, scratch)
        pandas_out = str(Path(scratch) / "pandas_medical_claims")

        def on_sail() -> None:
            sail_storage.overwrite(silver.medical_claims(storage.read(BRONZE), key), sail_out)

        def on_pandas() -> None:
            result = pandas_medical_claims(DeltaTable(bronze_path).to_pandas(), key)
            write_deltalake(pandas_out, result, mode="overwrite")

        print("checking that both give the same table", flush=True)
        on_sail()
        on_pandas()
        from_sail = DeltaTable(sail_storage.path(sail_out)).to_pyarrow_table()
        if not same_table(from_sail, DeltaTable(pandas_out).to_pyarrow_table()):
            raise AssertionError("the pandas cleaning does not give the Sail result; not timing it")

        timings: dict[str, list[float]] = {"sail": [], "pandas": []}
        paths = {"sail": on_sail, "pandas": on_pandas}
        for repeat in range(args.repeats):
            order = ("sail", "pandas") if repeat % 2 == 0 else ("pandas", "sail")
            for name in order:
                started = time.perf_counter()
                paths[name]()
                timings[name].append(time.perf_counter() - started)
                print(f"repeat {repeat + 1}/{args.repeats} {name}: {timings[name][-1]:.2f} s", flush=True)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    record = {
        "transform": "silver.medical_claims (read bronze Delta -> clean -> write Delta)",
        "input_rows": DeltaTable(bronze_path).to_pyarrow_table(columns=["claim_id"]).num_rows,
        "output_rows": from_sail.num_rows,
        "results_equal": True,
        "repeats": args.repeats,
        "sail_seconds": [round(v, 3) for v in timings["sail"]],
        "pandas_seconds": [round(v, 3) for v in timings["pandas"]],
        "sail_median_seconds": round(medians["sail"], 3),
        "pandas_median_seconds": round(medians["pandas"], 3),
        "pandas_over_sail": round(medians["pandas"] / medians["sail"], 3),
    }
    args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
