"""The gate after a promotion asset: the registry's champion is still the version the asset promoted."""

import dagster as dg

from healthcare_assets.assets.governance import FRAUD_MODEL_NAME, REGISTERED_FRAUD_MODEL_KEY
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.resources.mlflow import CHAMPION, MlflowResource


def champion_is_the_promoted_version(registered_key: dg.AssetKey, model_name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=registered_key,
        name="champion_is_the_promoted_version",
        blocking=True,
        metadata=gate_metadata(blocking=True),
        description=f"The registry's champion of {model_name} is the one this asset left in place: the version it "
        "promoted, or the previous champion after a refusal (nothing moved the alias since).",
    )
    def _check(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(registered_key)
        promoted = event.asset_materialization.metadata.get("champion_version") if event else None
        champion = mlflow.version_with_alias(model_name, CHAMPION)
        current = "none" if champion is None else str(champion.version)
        promoted_version = None if promoted is None else str(promoted.value)
        return dg.AssetCheckResult(
            passed=promoted_version == current,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"promoted_version": str(promoted_version), "champion_version": str(current)},
        )

    return _check


fraud_promotion_checks = [champion_is_the_promoted_version(REGISTERED_FRAUD_MODEL_KEY, FRAUD_MODEL_NAME)]
