"""Prints what the lakehouse holds: every Delta table with its rows, version and days.

`python -m healthcare_assets.report` after `make run`; reads the tables with
delta-rs, so it needs no Spark and no Dagster instance.
"""

import sys
from pathlib import Path

from deltalake import DeltaTable

from healthcare_assets.settings import load_settings


def table_summaries(root: str) -> list[dict]:
    summaries = []
    for log in sorted(Path(root).glob("*/*/_delta_log")):
        table = DeltaTable(str(log.parent))
        data = table.to_pyarrow_dataset()
        days = (
            len(set(data.to_table(columns=["ingest_date"]).column("ingest_date").to_pylist()))
            if "ingest_date" in data.schema.names
            else None
        )
        summaries.append(
            {
                "table": f"{log.parent.parent.name}.{log.parent.name}",
                "rows": data.count_rows(),
                "version": table.version(),
                "days": days,
            }
        )
    return summaries


def main() -> int:
    settings = load_settings()
    if not settings.is_local:
        print("the report reads local tables; deployed tables are in Unity Catalog", file=sys.stderr)
        return 2
    summaries = table_summaries(settings.lakehouse_root)
    if not summaries:
        print(f"no Delta tables under {settings.lakehouse_root}: run `make run` first", file=sys.stderr)
        return 1
    print(f"Delta tables under {settings.lakehouse_root}")
    print(f"{'table':<30} {'rows':>10} {'version':>8} {'days':>5}")
    for s in summaries:
        print(f"{s['table']:<30} {s['rows']:>10} {s['version']:>8} {s['days'] if s['days'] is not None else '-':>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
