"""Shared fixtures: one Spark session per test process (SPARK_ENGINE, Sail by default), throw-away lakehouses."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets_tests.pipeline import TEST_ENGINE
from healthcare_assets.resources.delta import DeltaStorage
from healthcare_assets.resources.spark import get_session


@pytest.fixture(scope="session")
def spark():
    return get_session(TEST_ENGINE)


@pytest.fixture
def storage(spark, tmp_path: Path) -> DeltaStorage:
    return DeltaStorage(spark, str(tmp_path / "lakehouse"), engine=TEST_ENGINE)
