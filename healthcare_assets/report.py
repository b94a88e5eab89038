"""Prints what the lakehouse holds and how its gates last ended, for people without a browser.

`python -m healthcare_assets.report` after `make run`: every Delta table with its
rows, version and days (read with delta-rs, no Spark), then the latest result of
every asset check recorded in the Dagster instance at $DAGSTER_HOME: passed, failed (ERROR), warning (WARN),
execution failed (its run failed before evaluating it), skipped or never run; every gate that needs attention is
listed with the days it judged and why.
"""

import sys
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from healthcare_assets.gate_status import NEEDS_ATTENTION, GateState, counts, graph_checks, latest_gate_states
from healthcare_assets.metadata import number_text
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


def gate_results(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[GateState]:
    """The latest state of every asset check of the code location, worst first."""
    return latest_gate_states(instance, graph_checks(defs.resolve_asset_graph()))


def gate_line(state: GateState) -> str:
    """One gate for people: status, severity, check, days judged, reason and its non-zero numbers."""
    numbers = ", ".join(f"{k}={number_text(v)}" for k, v in state.numbers.items() if v)
    parts = [f"{state.status.upper():<16} {state.severity or '-':<5} {state.name}"]
    if state.days:
        parts.append(f"[{state.days}]")
    if state.reason:
        parts.append(f"- {state.reason}")
    if numbers:
        parts.append(f"({numbers})")
    return " ".join(parts)


def print_gates(states: list[GateState]) -> None:
    tally = counts(states)
    print("\nGates: " + ", ".join(f"{n} {status}" for status, n in tally.items() if n))
    for state in states:
        if state.status in NEEDS_ATTENTION:
            print(f"  {gate_line(state)}")


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

    print_gates(gate_results(defs, dg.DagsterInstance.get()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
