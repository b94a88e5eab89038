"""A claim re-delivered on a later day and then backfilled out of order is caught before gold."""

from datetime import date
from pathlib import Path

import pytest

from assets_tests.pipeline import Pipeline, check_results, materialized
from healthcare_assets.assets.gold import MEMBER_FEATURES_KEY

# also run on classic Spark + delta-spark (the Databricks engine) by `make test`
pytestmark = pytest.mark.engine_fidelity

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def test_a_redelivered_claim_backfilled_out_of_order_blocks_gold(tmp_path):
    pipeline = Pipeline(tmp_path)
    landing_only = [k for k in pipeline.defs.resolve_all_asset_keys() if k.path[0] == "landing"]
    assert pipeline.run(D1, D2, selection=landing_only).success
    day1 = Path(pipeline.settings.landing_root, "medical_claims", D1.isoformat())
    day2 = Path(pipeline.settings.landing_root, "medical_claims", D2.isoformat())
    redelivered = next(day1.glob("*.csv")).read_text().splitlines()
    (day2 / "redelivered.csv").write_text("\n".join(redelivered[:2]) + "\n")

    # landing aside, up to the claim tables (member features and the risk models built on them are not needed)
    without_landing = [k for k in pipeline.medallion_assets() if k.path[0] != "landing" and k != MEMBER_FEATURES_KEY]
    assert pipeline.run(D2, selection=without_landing).success
    result = pipeline.run(D1, selection=without_landing)
    checks = check_results(result)
    assert not result.success
    assert not checks[("silver/medical_claims", "primary_key_unique")].passed
    assert checks[("silver/medical_claims", "primary_key_unique")].metadata["duplicate_keys"].value == 1
    assert "gold/claim_features" not in materialized(result)
