"""Governance assets: fairness of each fraud model's shipped flags per protected group and day (and the
false-positive-rate parity over the labelled days), and the gated registration of the better fraud autoencoder
(challenger, then champion once every one of its gates passed)."""

from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
from pyspark.sql import types as T

from healthcare_assets import catalog, charts
from healthcare_assets.assets import promotion
from healthcare_assets.assets.common import latest_metadata_value, run_days
from healthcare_assets.assets.fraud import CLAIM_FEATURES, EVALUATION_KEY, MODEL_KEYS, MODEL_TYPES, SCORE_KEYS
from healthcare_assets.assets.landing import FRAUD_LABELS_KEY
from healthcare_assets.checks import fraud as fraud_gates
from healthcare_assets.checks.governance import (
    DI_GATE,
    FPR_GATE,
    chi_square_result,
    disparate_impact_result,
    fairness_check_specs,
    fairness_gate_name,
    false_positive_rate_result,
    fpr_status,
    percent,
    ratio_text,
)
from healthcare_assets.domain import fairness
from healthcare_assets.domain.features import PROTECTED_ATTRIBUTES
from healthcare_assets.partitions import daily_partitions, single_run_backfill
from healthcare_assets.resources.alerts import AlertsResource
from healthcare_assets.resources.delta import PARTITION_COLUMN, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource
from healthcare_assets.resources.mlflow import MlflowResource
from healthcare_assets.transforms import fairness as fairness_transforms
from healthcare_assets.transforms.fairness import FLAG_COLUMN

FAIRNESS_MONITORING_KEY = dg.AssetKey(["governance", "fairness_monitoring"])
REGISTERED_FRAUD_MODEL_KEY = dg.AssetKey(["fraud", "registered_fraud_model"])
FRAUD_MODEL_NAME = "claims_fraud_autoencoder"
GOVERNANCE_OWNERS = ["team:fraud-ml", "team:governance"]
# each model's own fairness gates: its promotion reads these only (the fraud gates are checks/fraud.py's promotion_gates)
DI_GATE_KEYS = {t: dg.AssetCheckKey(FAIRNESS_MONITORING_KEY, fairness_gate_name(DI_GATE, t)) for t in MODEL_TYPES}
FPR_GATE_KEYS = {t: dg.AssetCheckKey(FAIRNESS_MONITORING_KEY, fairness_gate_name(FPR_GATE, t)) for t in MODEL_TYPES}
CHART_CAP = 3.0  # the disparate-impact chart cuts bars off here and prints their value

FAIRNESS_SCHEMA = T.StructType(
    [
        T.StructField(PARTITION_COLUMN, T.DateType()),
        T.StructField("model_type", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("attribute", T.StringType()),
        T.StructField("protected_group", T.StringType()),
        T.StructField("reference_group", T.StringType()),
        T.StructField("compared_with", T.StringType()),
        T.StructField("group_size", T.LongType()),
        T.StructField("flagged", T.LongType()),
        T.StructField("flag_rate", T.DoubleType()),
        T.StructField("comparison_rate", T.DoubleType()),
        T.StructField("disparate_impact", T.DoubleType()),
        T.StructField("disparate_impact_note", T.StringType()),
        T.StructField("chi_square_p_value", T.DoubleType()),
        T.StructField("confirming_p_value", T.DoubleType()),
        T.StructField("status", T.StringType()),
        T.StructField("attribute_status", T.StringType()),
        T.StructField("legitimate_claims", T.LongType()),
        T.StructField("false_positives", T.LongType()),
        T.StructField("false_positive_rate", T.DoubleType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("evaluated_at", T.TimestampType()),
    ]
)


class FairnessConfig(dg.Config):
    """`fail_on_bias`: fail the run (and so the fraud training run that includes it) when a model's flags are
    biased in more than fairness.MAX_BIASED_ATTRIBUTES protected attributes on a day. `reference_groups`:
    attribute -> the group every other group is compared with (default: each attribute's largest group)."""

    fail_on_bias: bool = False
    min_group_size: int = fairness.DEFAULT_MIN_GROUP_SIZE
    reference_groups: dict[str, str] = {}


def _shipped_flags(lakehouse: LakehouseResource, model_type: str, days: list[date], labelled: list[date]):
    """The model's stored flags of `days` with the claims' protected attributes and fraud labels (pandas)."""
    storage = lakehouse.storage()
    ref = TableRef.from_path(SCORE_KEYS[model_type].path)
    if not storage.exists(ref):
        raise dg.Failure(f"{ref} does not exist: train the fraud models and score the day(s) first")
    start, end = days[0], days[-1]
    frauds = fairness_transforms.known_frauds(storage.spark, lakehouse.landing_root, labelled) if labelled else None
    joined = fairness_transforms.flags_with_groups(
        storage.read(ref, start, end), storage.read(CLAIM_FEATURES, start, end), frauds, labelled
    )
    return joined.toPandas()


def _false_positive_counts(claims: pd.DataFrame) -> dict[tuple, tuple[int, int]]:
    """(day, attribute, group) -> (legitimate claims, of them flagged) over the labelled days."""
    legitimate = claims[claims["is_fraud"].eq(False)]
    counts = {}
    for attribute in PROTECTED_ATTRIBUTES:
        groups = fairness.group_labels(legitimate[attribute])
        by_group = legitimate.groupby([legitimate[PARTITION_COLUMN], groups])[FLAG_COLUMN].agg(["size", "sum"])
        for (day, group), (size, flagged) in by_group.iterrows():
            counts[(day, attribute, group)] = (int(size), int(flagged))
    return counts


def _pooled(claims: pd.DataFrame, config: FairnessConfig) -> dict[str, list[dict]]:
    """The run's days pooled, per attribute and group: the flag rate and its ratio (shown; the DI gate judges each
    day) and, over the labelled days' legitimate claims, the false-positive rate and its parity (gated)."""
    options: dict = {"min_group_size": config.min_group_size, "reference_groups": config.reference_groups}
    flags = fairness.FairnessAnalyzer(claims, flagged=claims[FLAG_COLUMN].astype(bool), **options)
    labelled = claims[claims["is_fraud"].notna()]
    false_positives = (
        fairness.false_positive_rate_fairness(
            labelled, labelled[FLAG_COLUMN].astype(bool), labelled["is_fraud"].astype(bool), **options
        )
        if not labelled.empty and not labelled["is_fraud"].astype(bool).all()
        else {}
    )
    return {
        "flags": fairness.table_rows(flags.analyze_all_attributes()),
        "false_positives": fairness.table_rows(false_positives),
    }


def _model_fairness(
    context: dg.AssetExecutionContext, config: FairnessConfig, model_type: str, claims: pd.DataFrame, evaluated_at
) -> tuple[list[dict], list[str]]:
    """The model's fairness rows (one per day, attribute and group) and the days biased in too many attributes."""
    analyzers = fairness.analyze_family(
        dict(list(claims.groupby(PARTITION_COLUMN, sort=True))),
        FLAG_COLUMN,
        min_group_size=config.min_group_size,
        reference_groups=config.reference_groups,
    )
    false_positives = _false_positive_counts(claims)
    rows, over_limit = [], []
    for day, analyzer in analyzers.items():
        if analyzer.fail_on_bias:
            over_limit.append(f"{model_type} {day}: {', '.join(analyzer.biased_attributes)}")
        versions = ",".join(sorted(analyzer.data["model_version"].unique()))
        labelled = bool(analyzer.data["is_fraud"].notna().any())
        for row in fairness.table_rows(analyzer.analyze_all_attributes()):
            legitimate, flagged = false_positives.get((day, row["attribute"], row["protected_group"]), (0, 0))
            rows.append(
                {
                    PARTITION_COLUMN: day,
                    "model_type": model_type,
                    "model_version": versions,
                    **row,
                    "legitimate_claims": legitimate if labelled else None,
                    "false_positives": flagged if labelled else None,
                    "false_positive_rate": flagged / legitimate if labelled and legitimate else None,
                    "run_id": context.run_id,
                    "evaluated_at": evaluated_at,
                }
            )
    return rows, over_limit


def _pooled_di_chart(pooled: dict[str, dict[str, list[dict]]]) -> dg.MarkdownMetadataValue:
    """Per group and model the disparate impact of the run's days pooled, with the fair band; bars above the cap
    are cut off with their value printed, undefined ratios are marked."""
    by_group: dict[str, dict[str, float | None]] = {}
    for model_type, parts in pooled.items():
        for row in parts["flags"]:
            if row["status"] in fairness.JUDGED:
                label = f"{row['attribute'].removeprefix('patient_')}={row['protected_group']}"
                by_group.setdefault(label, {})[model_type] = row["disparate_impact"]
    figure = charts.bars_figure(
        dict(sorted(by_group.items())),
        "Disparate impact per protected group, the run's days pooled",
        "DI (the gate judges each day)",
        band=(f"fair band {fairness.DI_LOWER}-{fairness.DI_UPPER}", fairness.DI_LOWER, fairness.DI_UPPER),
        cap=CHART_CAP,
        size=charts.WIDE,
    )
    return charts.figure_markdown(figure)


def _report(rows: pd.DataFrame, pooled: dict[str, dict[str, list[dict]]]) -> str:
    """Human-readable summary: per model and attribute the days judged, the DI range and the groups flagged more
    (or less) than their comparison; then per group the run's days pooled: flag rate, DI, false-positive rate."""
    lines = [
        f"Flags = the shipped `{FLAG_COLUMN}` of each model. Disparate impact = a group's flag rate / its reference "
        "group's (the largest group unless configured; the reference itself is compared with the other groups). "
        f"Bias = flagged more, DI above {fairness.DI_UPPER}, confirmed by the chi-square test (alpha "
        f"{fairness.CHI_SQUARE_ALPHA}, Holm-adjusted over every day and attribute of the run); a group flagged less "
        f"(DI below {fairness.DI_LOWER}) is reported, never bias.",
        "",
        "| model | attribute | days | reference | min DI | max DI | undefined DI | biased group-days | "
        "flagged less | min p-value |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model_type, attribute), part in rows.groupby(["model_type", "attribute"], sort=True):
        judged = part[part["status"].isin(fairness.JUDGED)]
        ratios = judged["disparate_impact"].dropna()
        biased = part[part["status"] == fairness.BIAS]
        below = sorted(set(part.loc[part["status"] == fairness.BELOW_REFERENCE, "protected_group"]))
        biased_text = ", ".join(
            f"{r.protected_group} {r[PARTITION_COLUMN]} ({percent(r.flag_rate)} of {r.group_size} vs "
            f"{percent(r.comparison_rate)} {r.compared_with})"
            for _, r in biased.iterrows()
        )
        lines.append(
            f"| {model_type} | {attribute} | {part[PARTITION_COLUMN].nunique()} | "
            f"{', '.join(sorted(set(part['reference_group'].dropna())))} | "
            f"{f'{ratios.min():.2f}' if len(ratios) else 'undefined'} | "
            f"{f'{ratios.max():.2f}' if len(ratios) else 'undefined'} | {len(judged) - len(ratios)} | "
            f"{biased_text or '-'} | {', '.join(below) or '-'} | {part['chi_square_p_value'].min():.3g} |"
        )
    lines += [
        "",
        "The run's days pooled. Flag rate and DI are shown, not gated (the gate above judges each day). The "
        "false-positive rate (FPR) = flags among the legitimate claims of the labelled days; its parity gate warns "
        f"above {fairness.FPR_RATIO_UPPER} x the comparison, confirmed by the chi-square test.",
        "",
        "| model | attribute | group | claims | flag rate | compared with | DI | legitimate claims | FPR | "
        "FPR compared with | FPR ratio | FPR status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model_type, parts in sorted(pooled.items()):
        false_positives = {(g["attribute"], g["protected_group"]): g for g in parts["false_positives"]}
        for g in parts["flags"]:
            fp = false_positives.get((g["attribute"], g["protected_group"]))
            fpr = (
                f"{fp['group_size']} | {percent(fp['flag_rate'])} | {fp['compared_with'] or '-'} "
                f"({percent(fp['comparison_rate'])}) | {ratio_text(fp['disparate_impact'], fp['disparate_impact_note'])}"
                f" | {fpr_status(fp['status'])}"
                if fp
                else "0 | - | - | - | not labelled"
            )
            lines.append(
                f"| {model_type} | {g['attribute']} | {g['protected_group']} | {g['group_size']} | "
                f"{percent(g['flag_rate'])} | {g['compared_with'] or '-'} ({percent(g['comparison_rate'])}) | "
                f"{ratio_text(g['disparate_impact'], g['disparate_impact_note'])} | {fpr} |"
            )
    return "\n".join(lines)


@dg.asset(
    key=FAIRNESS_MONITORING_KEY,
    deps=[*SCORE_KEYS.values(), dg.AssetKey(["gold", "claim_features"]), FRAUD_LABELS_KEY],
    description=f"Fairness of each fraud model's shipped flags ({FLAG_COLUMN} of gold/fraud_scores_<model>) per "
    "protected group (patient_gender, geographic_region, patient_age_group) and day: flag rate with its group "
    "size, disparate impact against the reference group (the largest unless configured), chi-square p-value, "
    "status; on labelled days the false-positive rate among legitimate claims. Per-model gates, a markdown report "
    "and a disparate-impact chart in the metadata.",
    group_name="governance",
    kinds={"spark", "delta", "python"},
    owners=GOVERNANCE_OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    check_specs=fairness_check_specs(FAIRNESS_MONITORING_KEY, MODEL_TYPES),
    metadata=catalog.schema_metadata(FAIRNESS_SCHEMA),
)
def fairness_monitoring(context: dg.AssetExecutionContext, config: FairnessConfig, lakehouse: LakehouseResource):
    unknown = sorted(set(config.reference_groups) - set(PROTECTED_ATTRIBUTES))
    if unknown:
        raise dg.Failure(f"reference_groups names unknown attribute(s) {unknown}; use {list(PROTECTED_ATTRIBUTES)}")
    days = run_days(context)
    labelled = fairness_transforms.labelled_days(lakehouse.landing_root, days)
    evaluated_at = datetime.now(UTC).replace(tzinfo=None)
    rows: list[dict] = []
    over_limit: list[str] = []
    pooled: dict[str, dict[str, list[dict]]] = {}
    for model_type in MODEL_TYPES:
        claims = _shipped_flags(lakehouse, model_type, days, labelled)
        context.log.info(
            f"{model_type}: fairness of {len(claims)} scored claims {days[0]}..{days[-1]} "
            f"({len(labelled)} labelled day(s))"
        )
        if claims.empty:
            continue
        try:
            model_rows, model_over_limit = _model_fairness(context, config, model_type, claims, evaluated_at)
            pooled[model_type] = _pooled(claims, config)
        except ValueError as error:  # e.g. a configured reference group absent from the data
            raise dg.Failure(f"fairness of {model_type}: {error}") from error
        rows += model_rows
        over_limit += model_over_limit
    if not rows:
        raise dg.Failure(
            f"no fraud scores for {days[0]}..{days[-1]}: materialise gold/fraud_scores_* for these days first"
        )
    if config.fail_on_bias and over_limit:
        raise dg.Failure(
            f"fail_on_bias: flags biased in more than {fairness.MAX_BIASED_ATTRIBUTES} attribute(s) for "
            + "; ".join(over_limit)
        )
    frame = pd.DataFrame(rows, columns=FAIRNESS_SCHEMA.fieldNames())
    labelled_text = [day.isoformat() for day in labelled]
    yield dg.Output(
        lakehouse.storage().spark.createDataFrame(
            [tuple(row[name] for name in FAIRNESS_SCHEMA.fieldNames()) for row in rows], FAIRNESS_SCHEMA
        ),
        metadata={
            "model_versions": dg.MetadataValue.json(sorted(set(frame["model_version"]))),
            "biased_group_days": dg.MetadataValue.json(
                {t: int(((frame["model_type"] == t) & (frame["status"] == fairness.BIAS)).sum()) for t in MODEL_TYPES}
            ),
            "days_over_bias_limit": dg.MetadataValue.json(over_limit),
            "labelled_days": dg.MetadataValue.int(len(labelled)),
            "report": dg.MetadataValue.md(_report(frame, pooled)),
            "disparate_impact_chart": _pooled_di_chart(pooled),
            "di_band": f"[{fairness.DI_LOWER}, {fairness.DI_UPPER}]",
        },
    )
    # after the output: the gates' results then belong to this materialisation
    for model_type in MODEL_TYPES:
        model_rows = [r for r in rows if r["model_type"] == model_type]
        yield disparate_impact_result(model_type, model_rows)
        yield chi_square_result(model_type, model_rows)
        false_positives = pooled[model_type]["false_positives"] if model_type in pooled else []
        yield false_positive_rate_result(model_type, false_positives, labelled_text)


@dg.asset(
    key=REGISTERED_FRAUD_MODEL_KEY,
    deps=[*MODEL_KEYS.values(), EVALUATION_KEY, FAIRNESS_MONITORING_KEY],
    description=f"Registers the fraud autoencoder with the better evaluation ROC-AUC as `challenger` of "
    f"{FRAUD_MODEL_NAME} and moves `champion` to it only when its model checks, beats_isolation_forest, its scored "
    "table's flag-rate gate, its own fairness disparate-impact gate (judged on its shipped flags) and the latest "
    "drift gates passed, re-read from the instance (its false-positive-rate parity warning is recorded beside "
    "them); the decision goes to governance.model_audit_log, a refusal also alerts.",
    group_name="fraud",
    kinds={"mlflow"},
    owners=GOVERNANCE_OWNERS,
    check_specs=[promotion.promotion_check_spec(REGISTERED_FRAUD_MODEL_KEY)],
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
    # the model's own fairness gates: the other model's flags never block it
    di_gate = promotion.verify_gate(instance, DI_GATE_KEYS[best])
    false_positive_gate = promotion.verify_gate(instance, FPR_GATE_KEYS[best])  # a warning: recorded, not blocking
    assert di_gate is not None and false_positive_gate is not None
    # the fairness gate counts only if it judged this model's own flags
    if di_gate.passed and run_id not in _judged_model_versions(instance, DI_GATE_KEYS[best]):
        di_gate = promotion.GateResult(di_gate.gate, False, "did not evaluate this model's flags")
    decision = promotion.decide_promotion(
        context,
        model_name=FRAUD_MODEL_NAME,
        version=str(version.version),
        gates=[*gates, di_gate, false_positive_gate, *promotion.drift_gates(instance)],  # type: ignore[list-item]
        fairness_gates=[di_gate.gate, false_positive_gate.gate],
        psi=promotion.latest_psi_score(instance),
        lakehouse=lakehouse,
        mlflow=mlflow,
        alerts=alerts,
    )
    return dg.MaterializeResult(
        metadata={
            **decision.metadata,
            "model_type": dg.MetadataValue.text(best),
            "roc_auc": dg.MetadataValue.json(roc_auc),
            "mlflow_run_id": dg.MetadataValue.text(run_id),
        },
        check_results=[decision.check_result],
    )


def _judged_model_versions(instance: dg.DagsterInstance, gate: dg.AssetCheckKey) -> set[str]:
    """The model versions (MLflow run ids) whose flags the gate's latest evaluation judged."""
    evaluation = promotion.latest_evaluation(instance, gate)
    if evaluation is None or "model_versions" not in evaluation.metadata:
        return set()
    versions = evaluation.metadata["model_versions"].value
    return {str(v) for v in versions} if isinstance(versions, list) else set()
