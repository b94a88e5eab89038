"""Each data-quality gate passes on good data and fails, with the right severity and numbers, on bad data."""

import re
from datetime import date

import pytest
from pyspark.sql import functions as F

from assets_tests.pipeline import Pipeline, check_results, run_checks
from healthcare_assets.assets.landing import SyntheticDataConfig
from healthcare_assets.domain.synthetic import write_landing_day
from healthcare_assets.resources.delta import DeltaStorage, TableRef
from healthcare_assets.resources.spark import get_session

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


@pytest.fixture
def pipeline(tmp_path):
    pipeline = Pipeline(tmp_path, synthetic={"bad_record_rate": 0.02})
    assert pipeline.run(D1, D2).success
    return pipeline


def _storage(pipeline: Pipeline) -> DeltaStorage:
    return DeltaStorage(get_session("sail"), pipeline.settings.lakehouse_root)


def test_every_gate_passes_on_the_stored_tables(pipeline):
    result = run_checks(pipeline, D1, D2)
    evaluations = check_results(result)
    assert result.success
    assert len(evaluations) >= 20
    failed = {k for k, e in evaluations.items() if not e.passed}
    assert failed <= {("gold/claim_features", "values_expected")}


def test_a_lost_bronze_row_fails_reconciliation_and_names_the_day(pipeline):
    storage, ref = _storage(pipeline), TableRef("bronze", "medical_claims")
    storage.replace_days(storage.read(ref, D2, D2).where("_line_number <> 2"), ref, D2, D2)
    result = run_checks(pipeline, D1, D2)
    evaluation = check_results(result)[("bronze/medical_claims", "landing_reconciles")]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    per_day = evaluation.metadata["days"].value
    assert per_day["2026-01-01"]["difference"] == 0
    assert per_day["2026-01-02"]["difference"] == 1
    assert not result.success  # blocking


def test_bronze_behind_landing_warns(pipeline):
    write_landing_day(SyntheticDataConfig(**pipeline.synthetic).to_domain(), D3, pipeline.settings.landing_root)
    result = run_checks(pipeline, D1, D2)
    evaluation = check_results(result)[("bronze/pharmacy_claims", "caught_up_with_landing")]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert evaluation.metadata["days_behind"].value == 1
    assert result.success  # a warning does not fail the run


def test_negative_amount_fails_values_valid_with_the_rule_count(pipeline):
    storage, ref = _storage(pipeline), TableRef("silver", "medical_claims")
    claims = storage.read(ref, D1, D1)
    first = claims.agg(F.min("claim_id")).first()[0]
    negative = F.when(F.col("claim_id") == first, F.lit(-1).cast("decimal(12,2)")).otherwise(F.col("claim_amount"))
    storage.replace_days(claims.withColumn("claim_amount", negative), ref, D1, D1)
    evaluation = check_results(run_checks(pipeline, D1))[("silver/medical_claims", "values_valid")]
    assert not evaluation.passed
    assert evaluation.metadata["violations_claim_amount_not_negative"].value == 1
    assert evaluation.metadata["violations_paid_not_above_billed"].value == 1


def test_two_current_versions_of_a_member_fail_the_scd2_gate(pipeline):
    storage, ref = _storage(pipeline), TableRef("silver", "dim_members")
    dim = storage.read(ref)
    member = dim.agg(F.min("member_key")).first()[0]
    second_current = dim.where(F.col("member_key") == member).withColumn("version", F.col("version") + 100)
    storage.overwrite(dim.unionByName(second_current).localCheckpoint(), ref)
    evaluation = check_results(run_checks(pipeline, D1))[("silver/dim_members", "one_current_record_per_member")]
    assert not evaluation.passed
    assert evaluation.metadata["members_without_exactly_one_current_record"].value == 1


def test_a_feed_with_many_bad_lines_warns_on_quarantine_share(tmp_path):
    pipeline = Pipeline(tmp_path, synthetic={"bad_record_rate": 0.2})
    result = pipeline.run(D1)
    evaluation = check_results(result)[("bronze/quarantine", "quarantine_share_low")]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    # a rate for people: percent with its numerator and denominator
    shares = evaluation.metadata["quarantined_share_by_source"].value
    percent, quarantined, total = re.fullmatch(
        r"([0-9.]+) % \(([0-9,]+) of ([0-9,]+)\)", shares["medical_claims"]
    ).groups()
    assert 10 < float(percent) < 30
    assert float(percent) == round(100 * int(quarantined.replace(",", "")) / int(total.replace(",", "")), 1)
    assert f"medical_claims {shares['medical_claims']}" in evaluation.description
