"""Prints what the lakehouse holds and how its gates last ended, for people without a browser.

`python -m healthcare_assets.report` after `make run`: every Delta table with its
rows, version and days (read with delta-rs, no Spark), then the latest result of
every asset check recorded in the Dagster instance at $DAGSTER_HOME.
"""

import sys
from pathlib import Path

import dagster as dg
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


def gate_results(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dict]:
    """The latest evaluation of every asset check: passed, severity and its numbers."""
    graph = defs.resolve_asset_graph()
    results = []
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = instance.get_latest_asset_check_evaluation_record(key)
        event = record.event.dagster_event if record and record.event else None
        evaluation = event.asset_check_evaluation_data if event else None
        results.append(
            {
                "check": f"{key.asset_key.to_user_string()} {key.name}",
                "blocking": graph.get_check_spec(key).blocking,
                "passed": None if evaluation is None else evaluation.passed,
                "severity": None if evaluation is None else evaluation.severity.value,
                "metadata": {} if evaluation is None else {k: v.value for k, v in evaluation.metadata.items()},
            }
        )
    return results


def _print_gates(results: list[dict]) -> None:
    failed = [r for r in results if r["passed"] is False]
    not_run = [r for r in results if r["passed"] is None]
    passed = len(results) - len(failed) - len(not_run)
    print(f"\nGates: {passed} passed, {len(failed)} failed, {len(not_run)} not evaluated yet")
    for result in failed:
        numbers = ", ".join(f"{k}={v}" for k, v in result["metadata"].items() if isinstance(v, int | float) and v)
        print(f"  {result['severity']:<5} {result['check']}: {numbers}")


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
    from healthcare_assets.definitions import defs

    _print_gates(gate_results(defs, dg.DagsterInstance.get()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
