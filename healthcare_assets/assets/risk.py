"""Member risk models: training (challenger), gated promotion (champion) and daily batch scoring."""

import dagster as dg
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets.assets import promotion
from healthcare_assets.assets.common import SPARK_DELTA, run_days
from healthcare_assets.assets.gold import MEMBER_FEATURES_KEY
from healthcare_assets.assets.landing import RISK_SCORES_KEY
from healthcare_assets.domain import risk
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.alerts import AlertsResource
from healthcare_assets.resources.delta import TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import CHAMPION, MlflowResource, pinned_requirements
from healthcare_assets.resources.privacy import PrivacyResource
from healthcare_assets.transforms import risk as risk_transforms

MODEL_NAME = "member_risk_model"  # registered model; `challenger` on every new version, `champion` once promoted
EXPERIMENT = "member_risk"
# model assets are keyed [group, name] like the tables are [schema, table]
MEMBER_RISK_MODEL_KEY = dg.AssetKey(["risk", "member_risk_model"])
REGISTERED_RISK_MODEL_KEY = dg.AssetKey(["risk", "registered_risk_model"])
MEMBER_RISK_PREDICTIONS_KEY = dg.AssetKey(["gold", "member_risk_predictions"])
MEMBER_FEATURES_REF = TableRef.from_path(MEMBER_FEATURES_KEY.path)
RISK_OWNERS = ["team:risk-ml"]
MODEL_KINDS = {"scikitlearn", "mlflow"}
# The gate checks the promotion re-verifies (checks/risk.py defines them with these names).
PROMOTION_CHECK_KEYS = [dg.AssetCheckKey(MEMBER_RISK_MODEL_KEY, gate.name) for gate in risk.PROMOTION_GATES]
# The fairness gate of the high-risk classifier: accuracy parity per group (a warning check, but it blocks promotion).
FAIRNESS_CHECK_KEY = dg.AssetCheckKey(MEMBER_RISK_MODEL_KEY, "high_risk_accuracy_parity")


class RiskTrainingConfig(dg.Config):
    """Gradient-boosting hyper-parameters of the three member risk estimators."""

    n_estimators: int = 150
    learning_rate: float = 0.08
    max_depth: int = 3
    subsample: float = 0.8
    seed: int = 7

    def to_domain(self) -> risk.TrainingParams:
        return risk.TrainingParams(**self.model_dump())


def _training_frame(lakehouse: LakehouseResource, privacy: PrivacyResource) -> tuple[pd.DataFrame, int, str]:
    """Member features (at a pinned Delta version) joined with the actuarial labels of their as-of day."""
    storage = lakehouse.storage()
    version = storage.version(MEMBER_FEATURES_REF)
    features = storage.read(MEMBER_FEATURES_REF, version=version)
    as_of = features.agg(F.max("as_of_date")).collect()[0][0]
    if as_of is None:
        raise dg.Failure("gold.member_features is empty: materialise it first")
    try:
        labels = risk_transforms.risk_labels(features.sparkSession, lakehouse.landing_root, as_of, privacy.key())
    except FileNotFoundError as error:
        raise dg.Failure(str(error)) from error
    groups = features.select("member_key", "geographic_region", "age_group")
    inputs = risk_transforms.model_inputs(features).join(groups, "member_key")
    frame: pd.DataFrame = inputs.join(labels, "member_key").toPandas()  # a few thousand members
    return frame.sort_values("member_key").reset_index(drop=True), version, as_of.isoformat()


def _gate_metadata(gates: list[risk.Gate]) -> dict:
    return {
        gate.name: {
            "metric": gate.metric,
            "observed": gate.observed,
            "threshold": gate.threshold,
            "margin": gate.margin,
        }
        for gate in gates
    }


@dg.asset(
    key=MEMBER_RISK_MODEL_KEY,
    deps=[MEMBER_FEATURES_KEY, RISK_SCORES_KEY],
    description="Trains the member risk models (0-100 risk score, high-risk classifier, predicted annual cost) on "
    "gold.member_features against the actuarial risk file, logs them to MLflow as one pyfunc with a signature and "
    "registers the version as `challenger`. Promotion gates run as blocking checks on this asset.",
    group_name="risk",
    kinds=MODEL_KINDS,
    owners=RISK_OWNERS,
    backfill_policy=single_run_backfill,
)
def member_risk_model(
    context: dg.AssetExecutionContext,
    config: RiskTrainingConfig,
    lakehouse: LakehouseResource,
    privacy: PrivacyResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    import mlflow as mlflow_api
    from mlflow.models import infer_signature

    from healthcare_assets.domain.risk_pyfunc import MemberRiskModel

    frame, features_version, as_of = _training_frame(lakehouse, privacy)
    train, test = risk.split(frame)
    if len(train) < 50 or len(test) < 20 or train["high_risk"].nunique() < 2:
        raise dg.Failure(
            f"too few labelled members to train ({len(train)} train, {len(test)} test, "
            f"{int(train['high_risk'].sum())} high-risk): land more days or members"
        )
    params = config.to_domain()
    context.log.info(f"training on {len(train)} members, evaluating on {len(test)} held-out members")
    models = risk.train(train, train, params)
    predictions = models.predict(test)
    metrics = risk.metrics(test, predictions)
    gates = risk.evaluate_gates(metrics)
    by_group = risk.accuracy_by_group(test, test, predictions)

    input_example = test[list(risk.FEATURE_COLUMNS)].head(5)  # feature rows only, no member keys
    signature = infer_signature(input_example, models.predict(input_example))
    with mlflow.start_run(EXPERIMENT, run_name=f"member_risk_{as_of}") as run:
        mlflow_api.log_params(
            {
                **params.__dict__,
                "member_features_delta_version": features_version,
                "as_of_date": as_of,
                "train_members": len(train),
                "test_members": len(test),
                "high_risk_cut": risk.HIGH_RISK_CUT,
            }
        )
        mlflow_api.log_metrics(metrics)
        mlflow_api.log_dict({"accuracy_by_group": by_group.to_dict("records")}, "bias/accuracy_by_group.json")
        logged = mlflow_api.pyfunc.log_model(
            name="model",
            python_model=MemberRiskModel(models),
            signature=signature,
            input_example=input_example,
            pip_requirements=pinned_requirements("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle"),
        )
    version = mlflow.register_challenger(logged.model_uri, MODEL_NAME, tags={"as_of_date": as_of})
    for gate in gates:
        context.log.info(gate.describe())
    return dg.MaterializeResult(
        metadata={
            "metrics": dg.MetadataValue.json(metrics),
            "promotion_gates": dg.MetadataValue.json(_gate_metadata(gates)),
            "gates_passed": dg.MetadataValue.bool(all(gate.passed for gate in gates)),
            "accuracy_by_group": dg.MetadataValue.json(by_group.to_dict("records")),
            "accuracy_by_group_table": dg.MetadataValue.md(by_group.to_markdown(index=False)),
            "mlflow_run_id": dg.MetadataValue.text(run.info.run_id),
            "model_uri": dg.MetadataValue.text(logged.model_uri),
            "registered_model": dg.MetadataValue.text(MODEL_NAME),
            "model_version": dg.MetadataValue.text(str(version.version)),
            "member_features_delta_version": dg.MetadataValue.int(features_version),
            "as_of_date": dg.MetadataValue.text(as_of),
            "train_members": dg.MetadataValue.int(len(train)),
            "test_members": dg.MetadataValue.int(len(test)),
        }
    )


@dg.asset(
    key=REGISTERED_RISK_MODEL_KEY,
    deps=[MEMBER_RISK_MODEL_KEY],
    description="Promotes the latest member risk model to `champion` in the MLflow registry, only after "
    "re-verifying that every promotion gate (metrics, accuracy parity, drift once evaluated) passed on that very "
    "materialisation; records the decision in governance.model_audit_log and alerts on a refusal.",
    group_name="risk",
    kinds={"mlflow"},
    owners=RISK_OWNERS,
    backfill_policy=single_run_backfill,
)
def registered_risk_model(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, lakehouse: LakehouseResource, alerts: AlertsResource
) -> dg.MaterializeResult:
    instance = context.instance
    records = instance.fetch_materializations(MEMBER_RISK_MODEL_KEY, limit=1).records
    if not records:
        raise dg.Failure("member_risk_model has never been materialised: train it first")
    version = str(records[0].asset_materialization.metadata["model_version"].value)
    gates = [promotion.verify_gate(instance, key) for key in PROMOTION_CHECK_KEYS]
    fairness = promotion.verify_gate(instance, FAIRNESS_CHECK_KEY, warn_blocks=True)
    previous = mlflow.version_with_alias(MODEL_NAME, CHAMPION)
    metadata = promotion.decide_promotion(
        context,
        model_name=MODEL_NAME,
        version=version,
        gates=[*gates, fairness, *promotion.drift_gates(instance)],  # type: ignore[list-item]
        fairness_gates=[fairness.gate],  # type: ignore[union-attr]
        psi=promotion.latest_psi_score(instance),
        lakehouse=lakehouse,
        mlflow=mlflow,
        alerts=alerts,
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "previous_champion_version": dg.MetadataValue.text(str(previous.version) if previous else "none"),
        }
    )


def load_champion(mlflow: MlflowResource) -> tuple[risk.RiskModels, str]:
    """The champion's fitted models and version; a clear failure when no version has been promoted."""
    import mlflow as mlflow_api

    champion = mlflow.version_with_alias(MODEL_NAME, CHAMPION)
    if champion is None:
        raise dg.Failure(
            f"{MODEL_NAME} has no {CHAMPION}: materialise member_risk_model and registered_risk_model "
            "(every promotion gate must pass) before scoring"
        )
    model = mlflow_api.pyfunc.load_model(mlflow.alias_uri(MODEL_NAME, CHAMPION))
    return model.unwrap_python_model().models, str(champion.version)


@dg.asset(
    key=MEMBER_RISK_PREDICTIONS_KEY,
    ins={"features": dg.AssetIn(MEMBER_FEATURES_KEY)},
    deps=[REGISTERED_RISK_MODEL_KEY],
    description="Daily batch scores of every current member with the champion risk model: risk score (0-100), "
    "high-risk flag and probability, predicted annual cost, model version and scoring time.",
    group_name="gold",
    kinds=SPARK_DELTA,
    owners=RISK_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def member_risk_predictions(
    context: dg.AssetExecutionContext, features: DataFrame, mlflow: MlflowResource
) -> DataFrame:
    models, version = load_champion(mlflow)
    days = run_days(context)
    context.log.info(f"scoring every current member for {len(days)} day(s) with {MODEL_NAME} v{version}")
    scored = risk_transforms.score_members(features, models, days)
    return scored.withColumn("model_name", F.lit(MODEL_NAME)).withColumns(
        {"model_version": F.lit(version), "scored_at": F.current_timestamp()}
    )
