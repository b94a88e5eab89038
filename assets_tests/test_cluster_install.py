"""What a job cluster installs resolves on the target Databricks runtime without replacing any of its packages.

`pip install --dry-run --report` of the built wheel plus the cluster libraries, for
Python 3.12 (`--python-version 3.12 --only-binary=:all:`: only wheels, as the
cluster's pip would pick them), against a stand-in of the runtime's environment:
an empty virtualenv whose site-packages holds a metadata-only entry for every
package the runtime ships (`databricks_runtime/<RUNTIME>.txt`), so pip sees them
installed exactly as on the cluster, plus the same list as `==` constraints. The
resolve is real (PyPI); a requirement the runtime's version does not satisfy makes
pip refuse, and anything pip would still (re)install from the list fails the test.
"""

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthcare_assets.environments import PROFILES, RUNTIME, RUNTIME_PYTHON
from healthcare_assets.resources.databricks import cluster_libraries

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = Path(__file__).parent / "databricks_runtime" / f"{RUNTIME}.txt"


def runtime_packages(path: Path = RUNTIME_PACKAGES) -> dict[str, str]:
    packages = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            packages[name.lower().replace("_", "-")] = version
    return packages


@dataclass
class InstallPlan:
    refused: str | None  # pip's message when the install is impossible
    installs: dict[str, str]  # what pip would install: name -> version


def plan_cluster_install(requirements: list[str], tmp_path: Path) -> InstallPlan:
    """pip's plan for installing `requirements` onto the runtime's environment (Python RUNTIME_PYTHON)."""
    environment = tmp_path / "runtime"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True)
    (site_packages,) = environment.glob("lib/python*/site-packages")
    for name, version in runtime_packages().items():
        info = site_packages / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(environment / "bin" / "python"), "install", "--dry-run",
         "--quiet", "--report", str(report), "--python-version", RUNTIME_PYTHON, "--only-binary=:all:",
         "-c", str(RUNTIME_PACKAGES), *requirements],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        return InstallPlan(refused=result.stderr.strip() or result.stdout.strip(), installs={})
    items = json.loads(report.read_text())["install"]
    return InstallPlan(
        refused=None,
        installs={item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in items},
    )


@pytest.fixture(scope="module")
def pypi_reachable() -> None:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()  # noqa: S310 (fixed https URL)
    except OSError as error:
        pytest.skip(f"PyPI is not reachable, the resolve needs it: {error}")


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [str(ROOT / ".venv/bin/uv"), "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)], check=True
    )
    return next(out.glob("healthcare_assets-*.whl"))


def test_the_runtime_list_is_the_runtime_the_environments_run():
    assert RUNTIME == "17.3.x-scala2.13" and RUNTIME_PYTHON == "3.12"
    packages = runtime_packages()
    # the runtime's Spark is the engine line the suite runs (pyspark 4.0.x, delta-spark 4.0.x)
    assert packages["pyspark"].startswith("4.0.")
    assert {"pandas", "numpy", "pyarrow", "scikit-learn", "databricks-sdk", "mlflow-skinny"} <= set(packages)
    for profile in PROFILES.values():
        assert profile.cluster is None or profile.cluster.spark_version == RUNTIME


def test_the_wheel_and_cluster_libraries_install_on_the_runtime_without_replacing_its_packages(
    pypi_reachable, built_wheel, tmp_path
):
    libraries = cluster_libraries(PROFILES["dev"])
    requirements = [str(built_wheel)] + [lib["pypi"]["package"] for lib in libraries if "pypi" in lib]
    plan = plan_cluster_install(requirements, tmp_path)
    assert plan.refused is None, plan.refused
    replaced = {name: version for name, version in plan.installs.items() if name in runtime_packages()}
    assert replaced == {}, f"would replace runtime packages: {replaced}"
    # what the cluster adds: the project and the Dagster stack at the orchestrator's pins
    assert plan.installs["healthcare-assets"] == "0.1.0"
    assert plan.installs["dagster"] == plan.installs["dagster-pipes"] == "1.13.27"
    assert {"dagster-databricks", "catboost", "xgboost-cpu"} <= set(plan.installs)


@pytest.mark.parametrize("pin", ["pandas==2.3.3", "databricks-sdk==0.60.0"])
def test_a_library_pinned_against_the_runtime_is_refused(pypi_reachable, pin, tmp_path):
    plan = plan_cluster_install([pin], tmp_path)
    assert plan.refused is not None and pin.split("==")[0] in plan.refused
