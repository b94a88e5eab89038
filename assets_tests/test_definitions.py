"""The code location as users and CI see it: loadable, documented, gated, pinned."""

from importlib import metadata
from pathlib import Path

import dagster as dg
import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

from healthcare_assets.definitions import build_definitions, defs
from healthcare_assets.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"landing", "bronze", "silver", "gold", "fraud", "risk", "monitoring", "governance", "serving"}


def _asset_specs():
    return list(defs.resolve_all_asset_specs())


def test_every_layer_has_assets_and_every_asset_is_described_grouped_owned():
    specs = _asset_specs()
    assert {spec.group_name for spec in specs} == LAYERS
    for spec in specs:
        assert spec.description, spec.key
        assert spec.owners, spec.key
        assert spec.kinds, spec.key
        assert spec.key.path[0] == spec.group_name, spec.key


def test_table_keys_are_schema_and_table():
    for spec in _asset_specs():
        assert len(spec.key.path) == 2


def test_every_table_has_a_blocking_primary_key_or_reconciliation_gate():
    graph = defs.resolve_asset_graph()
    checks = [graph.get_check_spec(key) for key in graph.asset_check_keys]
    gated = {c.asset_key for c in checks if c.blocking}
    tables = {s.key for s in _asset_specs() if s.group_name != "landing"} - {dg.AssetKey(["bronze", "quarantine"])}
    assert tables <= gated
    assert all(c.description for c in checks)


def test_daily_pipeline_job_and_its_schedule_exist():
    job = defs.resolve_job_def("daily_pipeline")
    assert job.partitions_def is not None
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.cron_schedule == "0 2 * * *"


def test_deployed_environments_declare_landing_as_external_feeds():
    deployed = build_definitions(
        load_settings({"HEALTHCARE_ENV": "dev", "DATABRICKS_HOST": "https://dev.example.com", "DATABRICKS_TOKEN": "t"})
    )
    landing = [s for s in deployed.resolve_all_asset_specs() if s.group_name == "landing"]
    assert landing and not any(deployed.resolve_assets_def(s.key).is_executable for s in landing)


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["local"] + extras["test"]]


def _pins() -> dict[str, str]:
    """The exact pins (core Dagster stack, the local engine, the tools); the cluster's ranges are checked below."""
    pins = {}
    for requirement in _requirements():
        (specifier, *others) = requirement.specifier
        if specifier.operator == "==" and not others:
            pins[requirement.name] = specifier.version
    return pins


@pytest.mark.parametrize("name, version", sorted(_pins().items()))
def test_installed_versions_match_the_pins(name, version):
    assert metadata.version(name) == version


def test_dagster_libraries_are_released_in_lockstep_with_core():
    core = metadata.version("dagster")
    assert metadata.version("dagster-webserver") == core
    minor = core.split(".")[1]
    for library in ("dagster-pyspark", "dagster-databricks"):
        assert metadata.version(library) == f"0.{int(minor) + 16}.{core.split('.')[2]}"


def test_lock_file_pins_every_direct_dependency_identically():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith(" "):
            name, version = line.split("==")
            lock[name.split("[")[0].strip().lower()] = version.strip()
    for name, version in _pins().items():
        assert lock[name.lower()] == version, name
    # every range a cluster resolves against its runtime holds the locally tested version too
    for requirement in _requirements():
        assert requirement.specifier.contains(lock[requirement.name.lower()]), requirement
