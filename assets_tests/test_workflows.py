"""The GitHub Actions workflows parse, follow the release process and call only things that exist."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.\-/]+):", text, flags=re.MULTILINE))


def run_commands() -> list[str]:
    commands = []
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            commands += [step["run"] for step in job.get("steps", []) if "run" in step]
    return commands


def test_every_workflow_parses_and_every_job_runs_somewhere():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "deploy.yml"}
    for path in files:
        workflow = load(path.name)
        assert workflow["name"] and workflow["on"] and workflow["jobs"]
        for name, job in workflow["jobs"].items():
            assert "runs-on" in job or "uses" in job, name


def test_ci_runs_lint_types_security_tests_and_validates_every_environment():
    ci = load("ci.yml")
    assert "pull_request" in ci["on"]
    commands = " ".join(step.get("run", "") for job in ci["jobs"].values() for step in job["steps"])
    for target in (
        "make lint",
        "make typecheck",
        "make security",
        "make coverage",
        "make validate-all",
        "make workflows",
    ):
        assert target in commands
    assert ci["jobs"]["validate"]["strategy"]["matrix"]["environment"] == ["local", "dev", "staging", "prod"]


def test_cd_deploys_dev_from_main_and_prod_from_a_tag_after_staging_gates_and_approval():
    deploy = load("deploy.yml")
    assert deploy["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    jobs = deploy["jobs"]
    assert jobs["dev"]["if"] == "github.ref == 'refs/heads/main'" and jobs["dev"]["environment"] == "dev"
    assert jobs["staging"]["if"].startswith("startsWith(github.ref, 'refs/tags/v')")
    gates = " ".join(step.get("run", "") for step in jobs["staging"]["steps"])
    assert "JOB=unity_catalog_grants" in gates and "JOB=data_quality_checks" in gates
    assert jobs["prod"]["needs"] == "staging" and jobs["prod"]["environment"] == "prod"
    # a gate waits for its run and fails the job when the run fails; dagster-cloud keeps its build state
    makefile = (ROOT / "Makefile").read_text()
    gate_recipe = makefile.split("\ndagster-plus-job:")[1].split("\n\n")[0]
    assert "healthcare_assets.deploy run-gate $(JOB)" in gate_recipe
    assert "export DAGSTER_BUILD_STATEDIR" in makefile
    for name in ("dev", "staging", "prod"):
        # credentials only from the GitHub environment's secrets
        assert jobs[name]["env"]["DATABRICKS_TOKEN"] == "${{ secrets.DATABRICKS_TOKEN }}"


def test_every_make_target_and_module_a_workflow_calls_exists():
    targets = make_targets()
    commands = run_commands()
    called = {t for command in commands for t in re.findall(r"\bmake ([a-z][\w-]*)", command)}
    assert called and called <= targets, called - targets
    modules = {m for command in commands for m in re.findall(r"python -m ([\w.]+)", command)}
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module
    for script in {s for command in commands for s in re.findall(r"(?:^|\s)(\./[\w./-]+|scripts/[\w./-]+)", command)}:
        assert (ROOT / script).is_file(), script


def test_yamllint_accepts_the_workflows_and_the_dagster_files():
    result = subprocess.run(
        [
            str(ROOT / ".venv/bin/yamllint"),
            "-d",
            "relaxed",
            ".github/workflows",
            "dagster_cloud.yaml",
            "workspace.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_accepts_the_workflows():
    actionlint = ROOT / ".tools" / "actionlint"
    if not actionlint.exists():
        if shutil.which("go") is None:
            pytest.skip("actionlint not built and Go is absent: install Go, then `make actionlint`")
        subprocess.run(["make", "actionlint"], cwd=ROOT, check=True, capture_output=True)
    result = subprocess.run([str(actionlint), "-no-color"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
