"""Governance assets: fairness of each fraud model's flags per protected group and day, and the gated
registration of the better fraud autoencoder (challenger, then champion once every gate passed)."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pyspark.sql import types as T

from healthcare_assets import charts
from healthcare_assets.assets import promotion
from healthcare_assets.assets.common import latest_metadata_value, run_day_range
from healthcare_assets.assets.fraud import CLAIM_FEATURES, EVALUATION_KEY, MODEL_KEYS, MODEL_TYPES, SCORE_KEYS
from healthcare_assets.checks import fraud as fraud_gates
from healthcare_assets.checks.governance import (
    DI_GATE,
    chi_square_result,
    disparate_impact_result,
    fairness_check_specs,
)
from healthcare_assets.domain import fairness
from healthcare_assets.domain.features import PROTECTED_ATTRIBUTES
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.alerts import AlertsResource
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import MlflowResource

FAIRNESS_MONITORING_KEY = dg.AssetKey(["governance", "fairness_monitoring"])
REGISTERED_FRAUD_MODEL_KEY = dg.AssetKey(["fraud", "registered_fraud_model"])
FRAUD_MODEL_NAME = "claims_fraud_autoencoder"
GOVERNANCE_OWNERS = ["team:fraud-ml", "team:governance"]
# besides the fraud gates of checks/fraud.py (promotion_gates), the fairness gate of checks/governance.py
DI_GATE_KEY = dg.AssetCheckKey(FAIRNESS_MONITORING_KEY, DI_GATE)

FAIRNESS_SCHEMA = T.StructType(
    [
        T.StructField(PARTITION_COLUMN, T.DateType()),
        T.StructField("model_type", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("attribute", T.StringType()),
        T.StructField("protected_group", T.StringType()),
        T.StructField("reference_group", T.StringType()),
        T.StructField("group_size", T.LongType()),
        T.StructField("flagged", T.LongType()),
        T.StructField("flag_rate", T.DoubleType()),
        T.StructField("disparate_impact", T.DoubleType()),
        T.StructField("chi_square_p_value", T.DoubleType()),
        T.StructField("status", T.StringType()),
        T.StructField("attribute_status", T.StringType()),
        T.StructField("score_threshold", T.DoubleType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("evaluated_at", T.TimestampType()),
    ]
)


class FairnessConfig(dg.Config):
    """`fail_on_bias`: fail the run (and so the fraud training run that includes it) when a model's flags are
    biased in more than fairness.MAX_BIASED_ATTRIBUTES protected attributes on a day."""

    fail_on_bias: bool = False
    threshold_percentile: float = fairness.DEFAULT_THRESHOLD_PERCENTILE
    min_group_size: int = fairness.DEFAULT_MIN_GROUP_SIZE


def _scored_claims(lakehouse: LakehouseResource, model_type: str, start, end) -> pd.DataFrame:
    """The model's scores of start..end with the claims' protected attributes (no identifiers leave Spark)."""
    storage = lakehouse.storage()
    ref = TableRef.from_path(SCORE_KEYS[model_type].path)
    if not storage.exists(ref):
        raise dg.Failure(f"{ref} does not exist: train the fraud models and score the day(s) first")
    scores = storage.read(ref, start, end)
    groups = storage.read(CLAIM_FEATURES, start, end).select("claim_id", PARTITION_COLUMN, *PROTECTED_ATTRIBUTES)
    joined = scores.join(groups, ["claim_id", PARTITION_COLUMN]).select(
        PARTITION_COLUMN, "model_version", "fraud_score", *PROTECTED_ATTRIBUTES
    )
    return joined.toPandas()


def _worst_di_chart(rows: pd.DataFrame) -> dg.MarkdownMetadataValue:
    """Per group the disparate impact farthest from 1 over the run's days, per model, with the fair band."""
    judged = rows[rows["status"].isin([fairness.FAIR, fairness.BIAS, fairness.REFERENCE])].copy()
    judged["label"] = judged["attribute"].str.replace("patient_", "") + "=" + judged["protected_group"]
    judged["distance"] = (judged["disparate_impact"].clip(upper=10.0) - 1.0).abs()
    worst = judged.sort_values("distance").groupby(["label", "model_type"]).tail(1)
    by_group = {
        label: dict(zip(part["model_type"], part["disparate_impact"], strict=True))
        for label, part in worst.groupby("label", sort=True)
    }
    figure = charts.bars_figure(
        by_group,
        "Disparate impact per protected group",
        "worst DI over the run's days",
        band=(f"fair band {fairness.DI_LOWER}-{fairness.DI_UPPER}", fairness.DI_LOWER, fairness.DI_UPPER),
        cap=3.0,
        size=charts.WIDE,
    )
    return charts.figure_markdown(figure)


def _report(rows: pd.DataFrame) -> str:
    """Human-readable summary: per model and attribute, the days judged, worst DI and the biased groups."""
    lines = [
        "Fraud flags = the day's highest scores (threshold in `score_threshold`); "
        f"fair band of disparate impact [{fairness.DI_LOWER}, {fairness.DI_UPPER}], chi-square alpha "
        f"{fairness.CHI_SQUARE_ALPHA} (an out-of-band DI is bias when its test, Holm-adjusted over every day and "
        "attribute of the run, is significant).",
        "",
        "| model | attribute | days | min DI | max DI | biased groups | min p-value |",
        "|---|---|---|---|---|---|---|",
    ]
    for (model_type, attribute), part in rows.groupby(["model_type", "attribute"], sort=True):
        judged = part[part["status"].isin([fairness.FAIR, fairness.BIAS, fairness.REFERENCE])]
        biased = sorted(set(part.loc[part["status"] == fairness.BIAS, "protected_group"]))
        lines.append(
            f"| {model_type} | {attribute} | {part[PARTITION_COLUMN].nunique()} | "
            f"{judged['disparate_impact'].min():.3f} | {judged['disparate_impact'].max():.3f} | "
            f"{', '.join(biased) or '-'} | {part['chi_square_p_value'].min():.3g} |"
        )
    return "\n".join(lines)


@dg.asset(
    key=FAIRNESS_MONITORING_KEY,
    deps=[*SCORE_KEYS.values(), dg.AssetKey(["gold", "claim_features"])],
    description="Fairness of each fraud model's flags (top 5 % of a day's scores) per protected group "
    "(patient_gender, geographic_region, patient_age_group) and day: flag rate, disparate impact against the most "
    "favoured group, chi-square p-value, status; a markdown report and a disparate-impact chart in the metadata.",
    group_name="governance",
    kinds={"spark", "delta", "python"},
    owners=GOVERNANCE_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    check_specs=fairness_check_specs(FAIRNESS_MONITORING_KEY),
)
def fairness_monitoring(context: dg.AssetExecutionContext, config: FairnessConfig, lakehouse: LakehouseResource):
    start, end = run_day_range(context)
    evaluated_at = datetime.now(UTC).replace(tzinfo=None)
    rows: list[tuple] = []
    over_limit: list[str] = []
    for model_type in MODEL_TYPES:
        claims = _scored_claims(lakehouse, model_type, start, end)
        context.log.info(f"{model_type}: fairness of {len(claims)} scored claims {start}..{end}")
        analyzers = fairness.analyze_family(
            dict(list(claims.groupby(PARTITION_COLUMN, sort=True))),
            "fraud_score",
            threshold_percentile=config.threshold_percentile,
            min_group_size=config.min_group_size,
        )
        for day, analyzer in analyzers.items():
            part = analyzer.data
            if analyzer.fail_on_bias:
                over_limit.append(f"{model_type} {day}: {', '.join(analyzer.biased_attributes)}")
            versions = ",".join(sorted(part["model_version"].unique()))
            for result in analyzer.analyze_all_attributes().values():
                for group in result.groups:
                    rows.append(
                        (
                            day,
                            model_type,
                            versions,
                            result.attribute,
                            group.group,
                            result.reference_group,
                            group.size,
                            group.positives,
                            group.rate,
                            group.disparate_impact,
                            result.p_value,
                            group.status,
                            result.status,
                            analyzer.score_threshold,
                            context.run_id,
                            evaluated_at,
                        )
                    )
    if not rows:
        raise dg.Failure(f"no fraud scores for {start}..{end}: materialise gold/fraud_scores_* for these days first")
    if config.fail_on_bias and over_limit:
        raise dg.Failure(
            f"fail_on_bias: flags biased in more than {fairness.MAX_BIASED_ATTRIBUTES} attribute(s) for "
            + "; ".join(over_limit)
        )
    frame = pd.DataFrame(rows, columns=FAIRNESS_SCHEMA.fieldNames())
    records = frame.to_dict("records")
    yield dg.Output(
        lakehouse.storage().spark.createDataFrame(rows, FAIRNESS_SCHEMA),
        metadata={
            "model_versions": dg.MetadataValue.json(sorted(set(frame["model_version"]))),
            "biased_rows": dg.MetadataValue.int(int((frame["status"] == fairness.BIAS).sum())),
            "days_over_bias_limit": dg.MetadataValue.json(over_limit),
            "report": dg.MetadataValue.md(_report(frame)),
            "disparate_impact_chart": _worst_di_chart(frame),
            "di_band": f"[{fairness.DI_LOWER}, {fairness.DI_UPPER}]",
        },
    )
    # after the output: the gates' results then belong to this materialisation
    yield disparate_impact_result(records)
    yield chi_square_result(records)


@dg.asset(
    key=REGISTERED_FRAUD_MODEL_KEY,
    deps=[*MODEL_KEYS.values(), EVALUATION_KEY, FAIRNESS_MONITORING_KEY],
    description=f"Registers the fraud autoencoder with the better evaluation ROC-AUC as `challenger` of "
    f"{FRAUD_MODEL_NAME} and moves `champion` to it only when its model checks, beats_isolation_forest, its scored "
    "table's flag-rate gate and the fairness disparate-impact gate (both evaluated on its scores) and the latest "
    "drift gates passed, re-read from the "
    "instance; the decision goes to governance.model_audit_log, a refusal also alerts.",
    group_name="fraud",
    kinds={"mlflow"},
    owners=GOVERNANCE_OWNERS,
)
def registered_fraud_model(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, lakehouse: LakehouseResource, alerts: AlertsResource
) -> dg.MaterializeResult:
    instance = context.instance
    roc_auc = {t: float(latest_metadata_value(context, EVALUATION_KEY, f"{t}_roc_auc")) for t in MODEL_TYPES}
    best = max(roc_auc, key=roc_auc.__getitem__)
    model_uri = latest_metadata_value(context, MODEL_KEYS[best], "model_uri")
    run_id = latest_metadata_value(context, MODEL_KEYS[best], "mlflow_run_id")
    version = mlflow.register_challenger(
        model_uri, FRAUD_MODEL_NAME, tags={"model_type": best, "roc_auc": f"{roc_auc[best]:.4f}"}
    )
    context.log.info(f"{best} (ROC-AUC {roc_auc[best]:.3f}) registered as challenger version {version.version}")

    gates = fraud_gates.promotion_gates(instance, best, run_id)
    di_gate = promotion.verify_gate(instance, DI_GATE_KEY)
    assert di_gate is not None
    # the fairness gate counts only if it judged this model's own scores
    evaluated_versions = _fairness_model_versions(instance)
    if di_gate.passed and run_id not in evaluated_versions:
        di_gate = promotion.GateResult(di_gate.gate, False, "did not evaluate this model's scores")
    metadata = promotion.decide_promotion(
        context,
        model_name=FRAUD_MODEL_NAME,
        version=str(version.version),
        gates=[*gates, di_gate, *promotion.drift_gates(instance)],  # type: ignore[list-item]
        fairness_gates=[di_gate.gate],
        psi=promotion.latest_psi_score(instance),
        lakehouse=lakehouse,
        mlflow=mlflow,
        alerts=alerts,
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "model_type": dg.MetadataValue.text(best),
            "roc_auc": dg.MetadataValue.json(roc_auc),
            "mlflow_run_id": dg.MetadataValue.text(run_id),
        }
    )


def _fairness_model_versions(instance: dg.DagsterInstance) -> set[str]:
    event = instance.get_latest_materialization_event(FAIRNESS_MONITORING_KEY)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None or "model_versions" not in materialization.metadata:
        return set()
    versions = materialization.metadata["model_versions"].value
    if not isinstance(versions, list):
        return set()
    # a row's model_version joins the versions that scored its day
    return {v for joined in versions for v in str(joined).split(",")}
