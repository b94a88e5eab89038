"""Real-time scoring: each promoted champion behind a serving endpoint, probed against batch scoring.

`fraud-detector-<env>` serves the fraud champion and `member-risk-<env>` the risk champion (challenger beside
it with no traffic). Each asset deploys after its promotion asset and, in the same step, its check sends the
latest day's records through the endpoint and requires exactly the scores batch scoring gives them.
"""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from healthcare_assets.assets.fraud import CLAIM_FEATURES, feature_frame, load_fraud_model
from healthcare_assets.assets.governance import FRAUD_MODEL_NAME, REGISTERED_FRAUD_MODEL_KEY
from healthcare_assets.assets.risk import MEMBER_FEATURES_REF, MODEL_NAME, REGISTERED_RISK_MODEL_KEY
from healthcare_assets.catalog import gate_metadata
from healthcare_assets.resources.delta import PARTITION_COLUMN, DeltaStorage
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import CHALLENGER, CHAMPION, MlflowResource
from healthcare_assets.resources.serving import ServedModel, ServingResource, endpoint_name
from healthcare_assets.transforms import risk as risk_transforms
from healthcare_assets.transforms import scoring

SERVING_GROUP = "serving"
FRAUD_ENDPOINT_KEY = dg.AssetKey(["serving", "fraud_detector_endpoint"])
RISK_ENDPOINT_KEY = dg.AssetKey(["serving", "member_risk_endpoint"])
PROBE_CHECK = "serves_batch_scores"
# records sent through the endpoint by the probe (the latest day's first ones by key, one request)
PROBE_RECORDS = 50
# scores are floats computed by the same model code on both paths: equal up to serialisation
PROBE_TOLERANCE = 1e-9


def _served_model(mlflow: MlflowResource, name: str) -> ServedModel | None:
    champion = mlflow.version_with_alias(name, CHAMPION)
    if champion is None:
        return None
    challenger = mlflow.version_with_alias(name, CHALLENGER)
    return ServedModel(
        registered_name=mlflow.registered_name(name),
        champion_version=str(champion.version),
        challenger_version=str(challenger.version) if challenger else None,
        champion_uri=mlflow.alias_uri(name, CHAMPION),
    )


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON records of feature columns (numpy scalars and NaN made plain)."""
    return json_safe(frame).to_dict("records")


def json_safe(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None)


def probe_result(endpoint: str, batch: np.ndarray, served: np.ndarray, model: ServedModel) -> dg.AssetCheckResult:
    """Passed when the endpoint returned one score per record, each equal to its batch score."""
    same_length = len(batch) == len(served)
    difference = float(np.max(np.abs(batch - served))) if same_length and len(batch) else float("inf")
    return dg.AssetCheckResult(
        check_name=PROBE_CHECK,
        passed=bool(same_length and len(batch) > 0 and difference <= PROBE_TOLERANCE),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "endpoint": endpoint,
            "champion_version": model.champion_version,
            "records_probed": dg.MetadataValue.int(len(batch)),
            "scores_returned": dg.MetadataValue.int(len(served)),
            "max_abs_difference": dg.MetadataValue.float(difference),
            "tolerance": dg.MetadataValue.float(PROBE_TOLERANCE),
        },
    )


def latest_claims(storage: DeltaStorage, features: list[str], limit: int) -> DataFrame:
    """The latest day's first `limit` claims (by id) with their keys and the model's feature columns."""
    claims = storage.read(CLAIM_FEATURES)
    latest = claims.agg(F.max(PARTITION_COLUMN)).collect()[0][0]
    day = claims.where(F.col(PARTITION_COLUMN) == F.lit(latest)).orderBy("claim_id").limit(limit)
    return feature_frame(day, [*scoring.KEY_COLUMNS, PARTITION_COLUMN], features).localCheckpoint()


def latest_members(storage: DeltaStorage, limit: int) -> tuple[DataFrame, date]:
    """The first `limit` members (by key) of the latest feature snapshot, and its date."""
    members = storage.read(MEMBER_FEATURES_REF)
    latest = members.agg(F.max("as_of_date")).collect()[0][0]
    current = members.where(F.col("as_of_date") == F.lit(latest)).orderBy("member_key").limit(limit)
    return current.localCheckpoint(), latest


def member_inputs(members: DataFrame) -> pd.DataFrame:
    """What the risk endpoint takes for each member: the model's inputs without the key, in key order."""
    inputs: pd.DataFrame = risk_transforms.model_inputs(members).orderBy("member_key").toPandas()
    return inputs.drop(columns=["member_key"])


def _endpoint_metadata(endpoint: str, url: str, model: ServedModel) -> dict:
    return {
        "endpoint": endpoint,
        "url": dg.MetadataValue.url(url) if url.startswith("http") else url,
        "registered_model": model.registered_name,
        "champion_version": model.champion_version,
        "challenger_version": model.challenger_version or "none",
        "deployed": True,
        "traffic": dg.MetadataValue.json({"champion": 100, "challenger": 0}),
    }


def _nothing_to_serve(context: dg.AssetExecutionContext, name: str):
    """No champion yet (every promotion so far refused): the endpoint stays as it was, the check says why."""
    reason = f"{name} has no {CHAMPION}: nothing to serve until a promotion passes every gate"
    context.log.warning(reason)
    yield dg.MaterializeResult(metadata={"deployed": False, "reason": reason})
    yield dg.AssetCheckResult(
        check_name=PROBE_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=reason,  # what the check page, the report and the gate summary show
        metadata={"reason": reason},
    )


def _probe_check_spec(asset_key: dg.AssetKey, what: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        PROBE_CHECK,
        asset=asset_key,
        blocking=True,
        metadata=gate_metadata(blocking=True),
        description=f"The endpoint scores the latest day's {what} exactly as batch scoring does.",
    )


@dg.asset(
    key=FRAUD_ENDPOINT_KEY,
    deps=[REGISTERED_FRAUD_MODEL_KEY],
    check_specs=[_probe_check_spec(FRAUD_ENDPOINT_KEY, "claims")],
    description="Serves the fraud champion in real time (Databricks Model Serving `fraud-detector-<env>`, "
    "scale-to-zero, champion 100 % / challenger 0 %; locally MLflow's scoring server on 127.0.0.1).",
    group_name=SERVING_GROUP,
    kinds={"mlflow", "databricks"},
    owners=["team:fraud-ml"],
)
def fraud_detector_endpoint(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, serving: ServingResource, lakehouse: LakehouseResource
):
    model = _served_model(mlflow, FRAUD_MODEL_NAME)
    if model is None:
        yield from _nothing_to_serve(context, FRAUD_MODEL_NAME)
        return
    endpoint = endpoint_name("fraud-detector", serving.environment)
    url = serving.deploy(endpoint, model)
    context.log.info(f"{endpoint} serves {model.registered_name} version {model.champion_version}")
    yield dg.MaterializeResult(metadata=_endpoint_metadata(endpoint, url, model))

    autoencoder = load_fraud_model(model.champion_uri)
    sample = latest_claims(lakehouse.storage(), autoencoder.features, PROBE_RECORDS)
    batch: pd.DataFrame = (
        scoring.fraud_scores(sample, autoencoder, model.champion_version).orderBy("claim_id").toPandas()
    )
    probed: pd.DataFrame = sample.orderBy("claim_id").toPandas()
    served = pd.DataFrame(serving.query(endpoint, records(probed[autoencoder.features])))
    yield probe_result(endpoint, batch["fraud_score"].to_numpy(float), served["fraud_score"].to_numpy(float), model)


@dg.asset(
    key=RISK_ENDPOINT_KEY,
    deps=[REGISTERED_RISK_MODEL_KEY],
    check_specs=[_probe_check_spec(RISK_ENDPOINT_KEY, "members")],
    description="Serves the member risk champion in real time (Databricks Model Serving `member-risk-<env>`, "
    "scale-to-zero; locally MLflow's scoring server on 127.0.0.1).",
    group_name=SERVING_GROUP,
    kinds={"mlflow", "databricks"},
    owners=["team:risk-ml"],
)
def member_risk_endpoint(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, serving: ServingResource, lakehouse: LakehouseResource
):
    import mlflow as mlflow_api

    model = _served_model(mlflow, MODEL_NAME)
    if model is None:
        yield from _nothing_to_serve(context, MODEL_NAME)
        return
    endpoint = endpoint_name("member-risk", serving.environment)
    url = serving.deploy(endpoint, model)
    context.log.info(f"{endpoint} serves {model.registered_name} version {model.champion_version}")
    yield dg.MaterializeResult(metadata=_endpoint_metadata(endpoint, url, model))

    current, latest = latest_members(lakehouse.storage(), PROBE_RECORDS)
    models = mlflow_api.pyfunc.load_model(model.champion_uri).unwrap_python_model().models
    batch: pd.DataFrame = risk_transforms.score_members(current, models, [latest]).orderBy("member_key").toPandas()
    inputs = member_inputs(current)
    served = pd.DataFrame(serving.query(endpoint, records(inputs)))
    yield probe_result(endpoint, batch["risk_score"].to_numpy(float), served["risk_score"].to_numpy(float), model)
