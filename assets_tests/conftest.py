"""Shared fixtures: one embedded Spark session per test process, throw-away lakehouses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from healthcare_assets.resources.delta import DeltaStorage
from healthcare_assets.resources.spark import get_session

TEST_ENGINE = os.environ.get("SPARK_ENGINE", "sail")


@pytest.fixture(scope="session")
def spark():
    return get_session(TEST_ENGINE)


@pytest.fixture
def storage(spark, tmp_path: Path) -> DeltaStorage:
    return DeltaStorage(spark, str(tmp_path / "lakehouse"))
