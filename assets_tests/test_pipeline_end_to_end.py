"""The whole graph on small generated data, in a real Dagster instance, on real Delta tables."""

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from assets_tests.pipeline import Pipeline, check_results, materialized
from healthcare_assets.assets.landing import SyntheticDataConfig
from healthcare_assets.domain.landing import reason_kind
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.domain.synthetic import member_roster
from healthcare_assets.transforms import gold as gold_transforms
from healthcare_assets.transforms.bronze import count_landing_lines

# also run on classic Spark + delta-spark (the Databricks engine) by `make test`
pytestmark = pytest.mark.engine_fidelity

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
TABLES = [
    *(f"bronze/{s}" for s in SOURCES),
    "bronze/quarantine",
    *(f"silver/{s}" for s in SOURCES),
    "silver/dim_members",
    "gold/claim_features",
    "gold/member_features",
]


def _read(pipeline: Pipeline, key: str) -> pd.DataFrame:
    return DeltaTable(pipeline.table(*key.split("/"))).to_pandas()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("lakehouse"))
    pipeline.first_result = pipeline.run(D1, D3)
    return pipeline


def test_three_days_materialise_every_table_and_pass_every_error_gate(pipeline):
    result = pipeline.first_result
    assert result.success
    assert set(TABLES) <= materialized(result)
    failed_errors = [k for k, e in check_results(result).items() if not e.passed and e.severity.value == "ERROR"]
    assert failed_errors == []
    for key in TABLES:
        assert len(DeltaTable(pipeline.table(*key.split("/"))).file_uris()) > 0, key


def test_materialisations_report_rows_version_schema_and_partitions(pipeline):
    events = {"/".join(e.asset_key.path): e for e in pipeline.first_result.get_asset_materialization_events()}
    metadata = events["silver/medical_claims"].materialization.metadata
    assert metadata["dagster/row_count"].value == len(_read(pipeline, "silver/medical_claims"))
    assert metadata["delta_version"].value == DeltaTable(pipeline.table("silver", "medical_claims")).version()
    assert "claim_id" in [c.name for c in metadata["dagster/column_schema"].schema.columns]
    assert metadata["partitions"].value == "2026-01-01...2026-01-03"


def test_every_landing_line_is_in_bronze_or_quarantine_with_the_injected_reason(pipeline):
    root = Path(pipeline.settings.landing_root)
    quarantine = _read(pipeline, "bronze/quarantine")
    for name, source in SOURCES.items():
        bronze = _read(pipeline, f"bronze/{name}")
        for day in (D1, D2, D3):
            manifest = json.loads((root / "_manifests" / f"{day}.json").read_text())
            in_bronze = (bronze["ingest_date"] == day).sum()
            quarantined = quarantine[(quarantine["source"] == name) & (quarantine["ingest_date"] == day)]
            assert count_landing_lines(str(root), source, day) == manifest["rows"][name]
            assert in_bronze + len(quarantined) == manifest["rows"][name], (name, day)
            expected_kinds = {k: v for k, v in manifest["bad_rows"][name].items() if v}
            assert quarantined["reason"].map(reason_kind).value_counts().to_dict() == expected_kinds, (name, day)
    assert quarantine["_raw_record"].str.len().min() >= 0
    assert quarantine["reason"].notna().all()


def test_silver_and_gold_carry_no_direct_identifiers(pipeline):
    roster = member_roster(SyntheticDataConfig(**pipeline.synthetic).to_domain())
    identifiers = set(roster["member_id"]) | set(roster["last_name"]) | set(roster["street_address"])
    for key in TABLES:
        if key.startswith("bronze"):
            continue
        frame = _read(pipeline, key)
        assert not {"member_id", "first_name", "last_name", "date_of_birth", "patient_dob", "street_address"} & set(
            frame.columns
        ), key
        values = set(frame.select_dtypes(include="object").astype(str).to_numpy().ravel())
        assert not values & identifiers, key


def test_silver_deduplicates_the_duplicate_lines_bronze_kept(pipeline):
    root = Path(pipeline.settings.landing_root)
    duplicates = sum(
        json.loads((root / "_manifests" / f"{d}.json").read_text())["duplicate_rows"]["medical_claims"]
        for d in (D1, D2, D3)
    )
    bronze, silver = _read(pipeline, "bronze/medical_claims"), _read(pipeline, "silver/medical_claims")
    assert duplicates > 0
    assert len(bronze) - bronze["claim_id"].nunique() == duplicates
    assert len(silver) == bronze["claim_id"].nunique() == silver["claim_id"].nunique()


def test_gold_claim_features_cover_every_silver_claim(pipeline):
    silver, gold = _read(pipeline, "silver/medical_claims"), _read(pipeline, "gold/claim_features")
    assert sorted(silver["claim_id"]) == sorted(gold["claim_id"])
    first_claims = gold["claim_rate_90d"] == 0
    assert first_claims.any() and (~first_claims).any()
    # no earlier claim in the window: no days since one and no mean to compare with, never 0
    assert gold.loc[first_claims, ["days_since_last_claim", "amount_to_member_mean"]].isna().all().all()
    assert gold.loc[~first_claims, ["days_since_last_claim", "amount_to_member_mean"]].notna().all().all()
    assert (gold.loc[~first_claims, "amount_to_member_mean"] > 0).all()
    assert gold["history_days"].between(1, 3).all()


def test_claim_features_have_the_same_types_on_every_engine(pipeline):
    schema = {
        f.name: str(f.type) for f in pa.schema(DeltaTable(pipeline.table("gold", "claim_features")).schema().to_arrow())
    }
    arrow = {"int": "int32", "double": "double"}
    assert {name: schema[name] for name in gold_transforms.CLAIM_FEATURE_TYPES} == {
        name: arrow[dtype] for name, dtype in gold_transforms.CLAIM_FEATURE_TYPES.items()
    }


def test_dim_members_has_one_current_record_per_enrolled_member(pipeline):
    dim = _read(pipeline, "silver/dim_members")
    current = dim[dim["is_current_record"]]
    assert current["member_key"].is_unique
    assert set(current["member_key"]) == set(dim["member_key"])
    features = _read(pipeline, "gold/member_features")
    assert set(features["member_key"]) == set(current["member_key"])


def test_rerunning_a_day_leaves_identical_tables(pipeline):
    before = {key: _read(pipeline, key) for key in TABLES}
    result = pipeline.run(D2, selection=pipeline.medallion_assets())  # the tables compared below
    assert result.success
    for key in TABLES:
        after = _read(pipeline, key)
        assert len(after) == len(before[key]), key
        if key != "bronze/quarantine" and "_ingested_at" not in after.columns:
            columns = sorted(after.columns)
            pd.testing.assert_frame_equal(
                _canonical(after[columns]), _canonical(before[key][columns]), check_dtype=False, obj=key
            )


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(str)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)
