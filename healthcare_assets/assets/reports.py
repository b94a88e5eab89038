"""Governance reports: the model audit log, and one table with the latest result of every gate.

* `governance/model_audit_log`: every promotion decision, appended by the registered-model assets at the moment
  they decide (each decision shows as a materialisation of this asset from the promotion's run). Materialising it
  re-reads the table and summarises it: decisions, refusals, the latest decision per model (before the first decision it creates the table empty).
* `governance/gate_summary`: the latest state of every asset check of the code location (passed, failed,
  warning, execution failed, skipped, never run) with severity, days, numbers and reason, worst first, and a
  chart of the states per layer, so failing gates are found in one place rather than asset by asset.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql import types as T

from healthcare_assets import catalog, charts, gate_status
from healthcare_assets.assets.common import SPARK_DELTA
from healthcare_assets.assets.governance import GOVERNANCE_OWNERS, REGISTERED_FRAUD_MODEL_KEY
from healthcare_assets.assets.promotion import AUDIT_SCHEMA, MODEL_AUDIT_LOG, MODEL_AUDIT_LOG_KEY
from healthcare_assets.assets.risk import REGISTERED_RISK_MODEL_KEY
from healthcare_assets.metadata import number_text
from healthcare_assets.partitions import single_run_backfill
from healthcare_assets.resources.delta import TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource

GATE_SUMMARY_KEY = dg.AssetKey(["governance", "gate_summary"])
GATE_SUMMARY = TableRef.from_path(GATE_SUMMARY_KEY.path)
REPORT_KEYS = (MODEL_AUDIT_LOG_KEY, GATE_SUMMARY_KEY)
GATE_SUMMARY_SCHEMA = T.StructType(
    [
        T.StructField("asset", T.StringType()),
        T.StructField("check_name", T.StringType()),
        T.StructField("gate_status", T.StringType()),
        T.StructField("severity", T.StringType()),
        T.StructField("blocking", T.BooleanType()),
        T.StructField("days", T.StringType()),
        T.StructField("gate_reason", T.StringType()),
        T.StructField("numbers", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("check_evaluated_at", T.TimestampType()),
        T.StructField("summarised_at", T.TimestampType()),
    ]
)
LATEST_SHOWN = 20  # rows of the markdown tables in the metadata


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return "-" if value is None or value == "" else str(value).replace("|", "/").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dg.asset(
    key=MODEL_AUDIT_LOG_KEY,
    deps=[REGISTERED_RISK_MODEL_KEY, REGISTERED_FRAUD_MODEL_KEY],
    description="Every promotion decision of the registered models, promoted or refused: model, version, who "
    "launched it, fairness validated, PSI, every gate's result, the reason, run and time. Appended by "
    "risk/registered_risk_model and fraud/registered_fraud_model when they decide; materialising this asset "
    "summarises the table (decisions, refusals, the latest decision per model).",
    group_name="governance",
    kinds=SPARK_DELTA,
    owners=GOVERNANCE_OWNERS,
    metadata=catalog.schema_metadata(AUDIT_SCHEMA),
)
def model_audit_log(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    storage = lakehouse.storage()
    if not storage.exists(MODEL_AUDIT_LOG):
        # before the first decision: the log exists, empty, so readers and its gate see a table
        context.log.info(f"no promotion decided yet: {MODEL_AUDIT_LOG} created empty")
        storage.append(storage.spark.createDataFrame([], AUDIT_SCHEMA), MODEL_AUDIT_LOG)
    decisions = storage.read(MODEL_AUDIT_LOG).orderBy(F.col("decided_at").desc()).collect()
    latest: dict[str, Row] = {}
    for row in decisions:
        latest.setdefault(row["model_name"], row)
    refused = sum(not row["promoted"] for row in decisions)
    context.log.info(f"{len(decisions)} promotion decision(s), {refused} refused")
    return dg.MaterializeResult(
        metadata={
            **lakehouse.table_metadata(MODEL_AUDIT_LOG),
            "decisions": dg.MetadataValue.int(len(decisions)),
            "refusals": dg.MetadataValue.int(refused),
            "latest_decisions": dg.MetadataValue.md(
                _markdown_table(
                    ["model", "version", "promoted", "reason", "decided at (UTC)"],
                    [
                        (r["model_name"], r["model_version"], r["promoted"], r["reason"], r["decided_at"])
                        for r in latest.values()
                    ],
                )
            ),
        }
    )


def _layer(state: gate_status.GateState) -> str:
    return state.asset.split("/")[0]


def _summary_chart(states: list[gate_status.GateState]) -> dg.MarkdownMetadataValue:
    """Gates per layer by their latest state (only the states that occur)."""
    present = [s for s in gate_status.STATUSES if any(state.status == s for state in states)]
    by_layer = {
        layer: {status: sum(s.status == status and _layer(s) == layer for s in states) for status in present}
        for layer in sorted({_layer(s) for s in states})
    }
    figure = charts.bars_figure(by_layer, "Latest result of every gate, by layer", "gates", size=charts.WIDE)
    return charts.figure_markdown(figure)


def _numbers_text(numbers: dict[str, float | int]) -> str:
    return ", ".join(f"{name}={number_text(value)}" for name, value in numbers.items() if value)


def gate_summary_asset(checks: Sequence[tuple[dg.AssetCheckKey, bool]]) -> dg.AssetsDefinition:
    """The summary of `checks` (every check of the code location with whether it blocks)."""
    checks = list(checks)

    @dg.asset(
        key=GATE_SUMMARY_KEY,
        description="The latest result of every gate (asset check) in one table: status (passed, failed, warning, "
        "execution failed, skipped, never run), severity, blocking, the days judged, the numbers and the reason, "
        "worst first; the metadata lists the gates that need attention and charts the states per layer. Reads "
        "the Dagster instance, so it is current whenever it is materialised (the last step of `make run`).",
        group_name="governance",
        kinds=SPARK_DELTA,
        owners=GOVERNANCE_OWNERS,
        metadata=catalog.schema_metadata(GATE_SUMMARY_SCHEMA),
        # selected with the daily assets in a partition-range run of the CLI (the benchmark's backfill)
        backfill_policy=single_run_backfill,
    )
    def gate_summary(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        states = gate_status.latest_gate_states(context.instance, checks)
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = [
            (
                s.asset,
                s.check,
                s.status,
                s.severity,
                s.blocking,
                s.days,
                s.reason,
                _numbers_text(s.numbers),
                s.run_id,
                None if s.timestamp is None else datetime.fromtimestamp(s.timestamp, UTC).replace(tzinfo=None),
                now,
            )
            for s in states
        ]
        attention = [s for s in states if s.status in gate_status.NEEDS_ATTENTION]
        tally = gate_status.counts(states)
        context.log.info("gates: " + ", ".join(f"{n} {status}" for status, n in tally.items() if n))
        return dg.Output(
            lakehouse.storage().spark.createDataFrame(rows, GATE_SUMMARY_SCHEMA),
            metadata={
                "gates": dg.MetadataValue.int(len(states)),
                **{status.replace(" ", "_"): dg.MetadataValue.int(n) for status, n in tally.items()},
                "needs_attention": dg.MetadataValue.md(
                    _markdown_table(
                        ["status", "severity", "gate", "days", "reason", "numbers"],
                        [
                            (s.status, s.severity, s.name, s.days, s.reason, _numbers_text(s.numbers))
                            for s in attention[:LATEST_SHOWN]
                        ],
                    )
                    + (
                        f"\n\n{len(attention) - LATEST_SHOWN} more in the table"
                        if len(attention) > LATEST_SHOWN
                        else ""
                    )
                ),
                "states_chart": _summary_chart(states),
            },
        )

    return gate_summary
