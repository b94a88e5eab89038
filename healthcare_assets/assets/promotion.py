"""Gated model promotion with an audit trail, shared by every registered-model asset.

A promotion re-reads the gate results from the Dagster instance (never from the run that trained the model), so
a later or automated run cannot promote a model whose gates failed or were never evaluated on it. Every decision,
promoted or not, is appended to the Delta table `governance.model_audit_log` (and shows as a materialisation of
that asset); a refused promotion also sends an alert (identifiers and numbers only) and fails the registered
model's `challenger_promoted` check (WARN) with the reasons, so the graph, the run and the asset page show it.
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import dagster as dg
from pyspark.sql import types as T

from healthcare_assets.catalog import gate_metadata, schema_metadata
from healthcare_assets.resources.alerts import Alert, AlertsResource
from healthcare_assets.resources.delta import TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import CHAMPION, MlflowResource

MODEL_AUDIT_LOG = TableRef("governance", "model_audit_log")
MODEL_AUDIT_LOG_KEY = dg.AssetKey(["governance", "model_audit_log"])
PROMOTION_CHECK = "challenger_promoted"
USER_TAGS = ("dagster/user", "user")  # who launched the run (Dagster+ / the UI), else the job
AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("deployed_by", T.StringType()),
        T.StructField("fairness_validated", T.BooleanType()),
        T.StructField("psi_score", T.DoubleType()),
        T.StructField("gate_results", T.StringType()),
        T.StructField("promoted", T.BooleanType()),
        T.StructField("reason", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("decided_at", T.TimestampType()),
    ]
)


@dataclass(frozen=True)
class Decision:
    """A promotion decision: the registered model's metadata and its `challenger_promoted` check result."""

    metadata: dict
    check_result: dg.AssetCheckResult


def promotion_check_spec(registered_key: dg.AssetKey) -> dg.AssetCheckSpec:
    """The check a registered-model asset evaluates on its own decision: WARN when the promotion was refused."""
    return dg.AssetCheckSpec(
        PROMOTION_CHECK,
        asset=registered_key,
        metadata=gate_metadata(blocking=False),
        description="WARN when this materialisation refused to promote the new version (a gate failed or was not "
        "evaluated on it): the reasons are in the check's description, the champion stays where it was.",
    )


@dataclass(frozen=True)
class GateResult:
    gate: str  # asset/check
    passed: bool
    detail: str


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else None


def latest_evaluation(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> dg.AssetCheckEvaluation | None:
    execution = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key]).get(check_key)
    evaluation = execution.evaluation if execution is not None else None
    # a check planned in a run that has not evaluated it yet has no result
    return evaluation if isinstance(evaluation, dg.AssetCheckEvaluation) else None


def verify_gate(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, *, required: bool = True, warn_blocks: bool = False
) -> GateResult | None:
    """The gate's latest result. A required gate must have been evaluated on its asset's latest materialisation;
    an optional one (drift) counts only once evaluated (None before). A failed WARN evaluation blocks only with
    `warn_blocks` (a warning check that is a promotion gate, e.g. accuracy parity)."""
    name = f"{check_key.asset_key.to_user_string()}:{check_key.name}"
    evaluation = latest_evaluation(instance, check_key)
    if evaluation is None:
        return GateResult(name, False, "not evaluated") if required else None
    if required:
        target = evaluation.target_materialization_data
        if target is None or target.storage_id != _latest_storage_id(instance, check_key.asset_key):
            return GateResult(name, False, "not evaluated on the latest materialisation")
    if not evaluation.passed and (warn_blocks or evaluation.severity == dg.AssetCheckSeverity.ERROR):
        return GateResult(name, False, "failed")
    return GateResult(name, True, "passed" if evaluation.passed else "warning")


def psi_score(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> float | None:
    """The largest gated PSI of the latest PSI gate evaluation, if there is one."""
    evaluation = latest_evaluation(instance, check_key)
    if evaluation is None or "max_psi" not in evaluation.metadata:
        return None
    value = evaluation.metadata["max_psi"].value
    return float(value) if isinstance(value, int | float) else None


def drift_gates(instance: dg.DagsterInstance) -> list[GateResult]:
    """The latest drift gate results, once the drift monitoring has evaluated them."""
    from healthcare_assets.checks.governance import composite_drift_within_limit, psi_within_limits

    keys = [psi_within_limits.check_key, composite_drift_within_limit.check_key]
    return [g for g in (verify_gate(instance, k, required=False) for k in keys) if g is not None]


def latest_psi_score(instance: dg.DagsterInstance) -> float | None:
    from healthcare_assets.checks.governance import psi_within_limits

    return psi_score(instance, psi_within_limits.check_key)


def deployed_by(context: dg.AssetExecutionContext) -> str:
    tags = context.run.tags
    return next((tags[t] for t in USER_TAGS if tags.get(t)), f"dagster:{context.run.job_name}")


def decide_promotion(
    context: dg.AssetExecutionContext,
    *,
    model_name: str,
    version: str,
    gates: list[GateResult],
    fairness_gates: list[str],
    psi: float | None,
    lakehouse: LakehouseResource,
    mlflow: MlflowResource,
    alerts: AlertsResource,
) -> Decision:
    """Promotes `version` to champion when every gate passed; records the decision either way; on a refusal
    alerts and leaves the champion where it is. Returns the materialisation's metadata and its promotion check."""
    failed = [g for g in gates if not g.passed]
    promoted = not failed
    reason = "every gate passed" if promoted else "; ".join(f"{g.gate} {g.detail}" for g in failed)
    fairness_validated = all(g.passed for g in gates if g.gate in fairness_gates)
    if promoted:
        mlflow.promote(model_name, version)
    row = (
        model_name,
        version,
        deployed_by(context),
        fairness_validated,
        psi,
        json.dumps([asdict(g) for g in gates]),
        promoted,
        reason,
        context.run_id,
        datetime.now(UTC).replace(tzinfo=None),
    )
    storage = lakehouse.storage()
    storage.append(storage.spark.createDataFrame([row], AUDIT_SCHEMA), MODEL_AUDIT_LOG)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=MODEL_AUDIT_LOG_KEY,
            description=f"{model_name} version {version}: {'promoted' if promoted else 'refused'}",
            metadata={
                "model_name": model_name,
                "model_version": version,
                "promoted": promoted,
                "reason": reason,
                "location": storage.uri(MODEL_AUDIT_LOG),
                **schema_metadata(AUDIT_SCHEMA),
            },
        )
    )
    warned = [g.gate for g in gates if g.passed and g.detail == "warning"]
    gates_passed = f"{len(gates) - len(failed)} of {len(gates)}" + (
        f" ({len(warned)} with a warning)" if warned else ""
    )
    if promoted:
        context.log.info(f"{model_name} version {version} is now champion ({len(gates)} gates passed)")
        champion_version, description = version, f"version {version} is champion: {reason}"
        specific: dict[str, dg.MetadataValue] = {"verified_gates": dg.MetadataValue.json([g.gate for g in gates])}
    else:
        alerts.send(
            Alert(
                title=f"promotion of {model_name} blocked: {len(failed)} gate(s) failed",
                severity="error",
                asset=context.asset_key.to_user_string(),
                job=context.run.job_name,
                run_id=context.run_id,
                link=alerts.run_link(context.run_id),
                numbers={"failed_gates": len(failed), "fairness_validated": fairness_validated},
                dedup_key=f"promotion:{model_name}:{context.run_id}",
            )
        )
        # a refusal is a governance outcome, not a broken pipeline: the champion stays, the check and run say why
        context.log.warning(f"promotion of {model_name} version {version} refused: {reason}")
        champion = mlflow.version_with_alias(model_name, CHAMPION)
        champion_version = str(champion.version) if champion else "none"
        stays = f"champion stays version {champion_version}" if champion else f"{model_name} has no champion yet"
        description = f"version {version} refused ({stays}): {reason}"
        specific = {
            "refused_version": dg.MetadataValue.text(version),
            "refusal_reason": dg.MetadataValue.text(reason),
            "gate_results": dg.MetadataValue.json([asdict(g) for g in gates]),
        }
    return Decision(
        metadata={
            "registered_model": dg.MetadataValue.text(model_name),
            "promoted": dg.MetadataValue.bool(promoted),
            "champion_version": dg.MetadataValue.text(champion_version),
            "gates_passed": dg.MetadataValue.text(gates_passed),
            "gates_with_warning": dg.MetadataValue.json(warned),
            "fairness_validated": dg.MetadataValue.bool(fairness_validated),
            "audit_log": dg.MetadataValue.text(str(MODEL_AUDIT_LOG)),
            **specific,
        },
        check_result=dg.AssetCheckResult(
            check_name=PROMOTION_CHECK,
            passed=promoted,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={"champion_version": champion_version, "failed_gates": len(failed), "gates_passed": gates_passed},
        ),
    )
