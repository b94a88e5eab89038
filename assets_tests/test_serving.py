"""Real-time scoring locally: the promoted champions behind MLflow's scoring server on 127.0.0.1, probed with the
latest day's records and required to give exactly the batch scores (a real registry, Delta tables, Dagster run)."""

import pytest

from assets_tests.pipeline import check_results
from assets_tests.test_promotion_scenarios import (
    DAY,
    FRAUD_DATA,
    FRAUD_TRAINING,
    RISK_TRAINING,
    TRAINING,
    _scenario,
)
from healthcare_assets.assets.fraud import MODEL_KEYS
from healthcare_assets.assets.gold import CLAIM_FEATURES_KEY
from healthcare_assets.assets.landing import FRAUD_LABELS_KEY
from healthcare_assets.assets.monitoring import DRIFT_SUMMARY_KEY
from healthcare_assets.assets.serving import FRAUD_ENDPOINT_KEY, PROBE_CHECK, PROBE_RECORDS, RISK_ENDPOINT_KEY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    scenario = _scenario(
        tmp_path_factory.mktemp("serving"),
        FRAUD_DATA,
        [CLAIM_FEATURES_KEY, FRAUD_LABELS_KEY, DRIFT_SUMMARY_KEY, *RISK_TRAINING],
        [*FRAUD_TRAINING, *RISK_TRAINING],
        {MODEL_KEYS[t].to_python_identifier(): {"config": config} for t, config in TRAINING.items()},
    )
    assert scenario.result.success
    return scenario.pipeline, scenario.pipeline.run(DAY, selection=[FRAUD_ENDPOINT_KEY, RISK_ENDPOINT_KEY])


@pytest.mark.parametrize(
    "key, endpoint", [(FRAUD_ENDPOINT_KEY, "fraud-detector-local"), (RISK_ENDPOINT_KEY, "member-risk-local")]
)
def test_the_champion_serves_on_loopback_with_batch_identical_scores(served, key, endpoint):
    _, result = served
    assert result.success
    (materialization,) = [m for m in result.asset_materializations_for_node(key.to_python_identifier())]
    metadata = materialization.metadata
    assert metadata["endpoint"].value == endpoint and metadata["deployed"].value is True
    assert metadata["url"].value.startswith("http://127.0.0.1:")
    probe = check_results(result)[("/".join(key.path), PROBE_CHECK)]
    assert probe.passed, probe.metadata
    assert probe.metadata["records_probed"].value == probe.metadata["scores_returned"].value == PROBE_RECORDS
    assert probe.metadata["max_abs_difference"].value <= 1e-9


def test_without_a_champion_nothing_is_deployed_and_the_probe_warns(tmp_path):
    from assets_tests.pipeline import Pipeline

    pipeline = Pipeline(tmp_path / "lakehouse")
    result = pipeline.run(DAY, selection=[RISK_ENDPOINT_KEY])
    assert result.success
    probe = check_results(result)[("serving/member_risk_endpoint", PROBE_CHECK)]
    assert not probe.passed and "has no champion" in probe.metadata["reason"].value
