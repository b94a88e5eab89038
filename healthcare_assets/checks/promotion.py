"""The gate after a promotion asset: the registry's champion is still the version the asset promoted.

It never passes on nothing: without a materialisation recording a decision it fails (ERROR); when there is no
champion at all (the first promotion was refused) it fails as a warning with the refusal's reason, since nothing
can score with the model until a version passes every gate.
"""

import dagster as dg

from healthcare_assets.assets.governance import FRAUD_MODEL_NAME, REGISTERED_FRAUD_MODEL_KEY
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.resources.mlflow import CHAMPION, MlflowResource

NO_CHAMPION = "none"  # what a promotion asset records as champion_version while there is none


def _recorded(event, name: str) -> str | None:
    entry = event.asset_materialization.metadata.get(name) if event is not None else None
    return None if entry is None else str(entry.value)


def champion_is_the_promoted_version(registered_key: dg.AssetKey, model_name: str) -> dg.AssetChecksDefinition:
    asset = registered_key.to_user_string()

    @dg.asset_check(
        asset=registered_key,
        name="champion_is_the_promoted_version",
        blocking=True,
        metadata=gate_metadata(blocking=True),
        description=f"The registry's champion of {model_name} is the one this asset left in place: the version it "
        "promoted, or the previous champion after a refusal (nothing moved the alias since). Fails when no "
        "decision is recorded; warns while no version is champion.",
    )
    def _check(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(registered_key)
        promoted = _recorded(event, "champion_version")
        champion = mlflow.version_with_alias(model_name, CHAMPION)
        current = NO_CHAMPION if champion is None else str(champion.version)
        metadata = {"promoted_version": str(promoted), "champion_version": current}
        if promoted is None:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"no materialisation of {asset} records a promotion decision: materialise it",
                metadata=metadata,
            )
        if promoted == current == NO_CHAMPION:
            refusal = _recorded(event, "refusal_reason") or "no decision promoted a version"
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{model_name} has no champion: the promotion was refused ({refusal})",
                metadata=metadata,
            )
        agrees = promoted == current
        return dg.AssetCheckResult(
            passed=agrees,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None
            if agrees
            else f"the champion alias points at version {current}, but {asset} left it at version {promoted}",
            metadata=metadata,
        )

    return _check


fraud_promotion_checks = [champion_is_the_promoted_version(REGISTERED_FRAUD_MODEL_KEY, FRAUD_MODEL_NAME)]
