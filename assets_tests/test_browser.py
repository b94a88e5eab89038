"""The UI as people use it: `dagster dev` on a loopback port, driven by headless Chromium.

Opens the asset graph and finds every group and asset, reads an asset page's latest
materialisation (metadata, column docs, an embedded chart), launches a
materialisation from the UI and waits for the run to succeed. Then reads what a user
needs after a failure: the named job's run on the overview and jobs pages, the day and
reason on the bronze checks of a refused day, the gate summary's failing gates and the
audit log's documented columns. Screenshots go to
assets_tests/artifacts/; with UPDATE_DOCS_SCREENSHOT=1 the asset graph also
replaces docs/asset-graph.png.

Chromium comes from Debian (`make browser`); Playwright's own browser downloads are not used.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from healthcare_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
BIN = Path(sys.executable).parent
GROUPS = sorted({spec.group_name for spec in defs.resolve_all_asset_specs()})
DAY = "2026-01-01"
REFUSED_DAY = "2026-01-02"  # its medical claims file arrives with claim_amount renamed
# generous: `dagster dev` starts a code server, the daemon and the webserver, on a busy CI machine too
SERVER_START_SECONDS = 300
RUN_SECONDS = 300
STEP_MS = 120_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"dagster dev did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stops `dagster dev` and everything it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # dagster dev shuts its webserver, daemon and code server down
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _dagster(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dagster"), *args, "-m", "healthcare_assets.definitions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _demo(env: dict, day: str, *jobs: str) -> subprocess.CompletedProcess:
    """Jobs as `make run` runs them: recorded against the UI's code location."""
    return subprocess.run(
        [sys.executable, "-m", "healthcare_assets.demo", "--start", day, "--end", day, "--jobs", *jobs],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _seed(env: dict) -> None:
    """What the pages then show: DAY through the daily_pipeline job (the overview and jobs pages have its run,
    asset pages a materialisation, dim_members its input), then REFUSED_DAY landed with a renamed header column and
    refused by bronze ingestion, then the governance reports (gate summary, audit log) of both."""
    daily = _demo(env, DAY, "daily_pipeline")
    assert daily.returncode == 0, daily.stdout[-3000:] + daily.stderr[-3000:]
    landed = _dagster(env, "asset", "materialize", "--select", "group:landing", "--partition", REFUSED_DAY)
    assert landed.returncode == 0, landed.stderr[-3000:]
    folder = Path(env["LAKEHOUSE_ROOT"]) / "landing" / "medical_claims" / REFUSED_DAY
    claims = sorted(folder.iterdir())[0]
    header, *rows = claims.read_text().splitlines()
    claims.write_text("\n".join([header.replace("claim_amount", "amount_billed"), *rows]) + "\n")
    refused = _dagster(env, "asset", "materialize", "--select", "group:bronze", "--partition", REFUSED_DAY)
    assert refused.returncode != 0 and "not ingested" in refused.stdout + refused.stderr
    reports = _demo(env, REFUSED_DAY, "governance_reports")
    assert reports.returncode == 0, reports.stdout[-3000:] + reports.stderr[-3000:]


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed (`make browser` runs apt-get as root)")
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")  # the instance `make ui` uses
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKEHOUSE_ROOT": str(tmp / "lakehouse")}
    _seed(env)
    port = _free_port()
    log = tmp / "dagster-dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env={**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, process, log)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _page(browser, width=1600, height=1000):
    # open every group of the global graph (the UI keeps that state in local storage)
    expanded = json.dumps({"expanded": ",".join(f"global@global:{group}" for group in GROUPS)})
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(
        f"localStorage.setItem('asset-graph-open-graph-nodes-global-__GLOBAL__', {json.dumps(expanded)});"
    )
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    # a first visit to a new instance may offer a newsletter dialog: skip it whenever it shows up
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    return page


def _screenshot(page, name: str, clip: dict | None = None) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), clip=clip)
    return path


def _graph_screenshot(page) -> Path:
    """The whole asset graph, every group readable: the navigation hidden, the page reloaded so the graph
    fits the wider pane, and only the graph pane in the picture (right of the asset tree, below the toolbar)."""
    page.get_by_role("button", name="Hide navigation").click()  # the UI remembers it across the reload
    page.reload()
    graph = page.locator("svg").filter(has_text="claim_features").first
    graph.get_by_text("fraud", exact=True).first.wait_for()
    page.wait_for_timeout(2000)  # the zoom-to-fit animation
    tree_toggle = page.get_by_placeholder("Jump to…").locator("xpath=following::button[1]").bounding_box()
    left = tree_toggle["x"] + tree_toggle["width"] + 12
    top = tree_toggle["y"] + tree_toggle["height"] + 12
    viewport = page.viewport_size
    clip = {"x": left, "y": top, "width": viewport["width"] - left, "height": viewport["height"] - top}
    return _screenshot(page, "asset-graph", clip)


def _node_label(name: str):
    """The UI shortens long asset names in graph nodes ("fraud_sc…_catboost"): match those by their start."""
    return name if len(name) <= 16 else re.compile("^" + re.escape(name[:6]))


def test_ui_shows_the_graph_and_metadata_and_runs_a_materialisation(dagster_ui, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_MS)
    # 1. the asset graph: every group, every asset
    page = _page(browser, 1400, 1500)
    page.goto(f"{dagster_ui}/asset-groups")
    graph = page.locator("svg").filter(has_text="claim_features").first
    for group in GROUPS:
        expect(graph.get_by_text(group, exact=True).first).to_be_visible()
    for spec in defs.resolve_all_asset_specs():
        expect(graph.get_by_text(_node_label(spec.key.path[-1])).first).to_be_visible()
    picture = _graph_screenshot(page)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copy(picture, ROOT / "docs" / "asset-graph.png")

    # 2. an asset page: the latest materialisation's metadata, documented columns, tags and a chart
    page = _page(browser)
    page.goto(f"{dagster_ui}/assets/bronze/quarantine")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    for text in ("delta_version", "location", "partitions", "quarantined_by_source", "phi: true"):
        expect(page.get_by_text(text, exact=True).first).to_be_visible()
    expect(page.get_by_text("Why the line was quarantined: rule and column, never a value")).to_be_visible()
    _screenshot(page, "asset-page")
    page.get_by_text("quarantined_chart", exact=True).scroll_into_view_if_needed()
    page.get_by_text("[Show Markdown]").first.click()
    chart = page.get_by_role("dialog").locator('img[src^="data:image/png;base64,"]')
    expect(chart).to_be_visible()
    assert chart.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [600, 300]
    _screenshot(page, "asset-chart")
    page.get_by_role("button", name="Close").click()

    # 3. launch a materialisation of an unpartitioned table from its page and watch the run succeed
    page.goto(f"{dagster_ui}/assets/silver/dim_members")
    page.locator("button", has_text=re.compile(r"^Materialize$")).click()
    expect(page.get_by_text(re.compile(r"^Launched run"))).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]+"))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_SECONDS * 1000)
    _screenshot(page, "run-succeeded")
    page.goto(f"{dagster_ui}/assets/silver/dim_members")
    expect(page.get_by_text("current_members", exact=True).first).to_be_visible()


def test_ui_says_what_ran_what_failed_and_why(dagster_ui, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_MS)
    page = _page(browser)
    # the named job's run shows on the overview timeline and the jobs page
    page.goto(f"{dagster_ui}/overview/activity/timeline")
    expect(page.get_by_text("daily_pipeline").first).to_be_visible()
    page.goto(f"{dagster_ui}/jobs")
    expect(page.get_by_text("daily_pipeline").first).to_be_visible()
    expect(page.get_by_text("governance_reports").first).to_be_visible()
    _screenshot(page, "jobs")

    # a refused day: the bronze checks say which day and why
    page.goto(f"{dagster_ui}/assets/bronze/medical_claims?view=checks")
    expect(page.get_by_text("landing_reconciles").first).to_be_visible()
    expect(page.get_by_text(f"{REFUSED_DAY} not ingested").first).to_be_visible()
    expect(page.get_by_text("the header lacks contract column(s) claim_amount").first).to_be_visible()
    _screenshot(page, "refused-day-checks")

    # the gate summary lists the failing gates with day and reason, and charts every gate's state
    page.goto(f"{dagster_ui}/assets/governance/gate_summary")
    expect(page.get_by_text("needs_attention", exact=True).first).to_be_visible()
    page.get_by_text("needs_attention", exact=True).scroll_into_view_if_needed()
    page.locator("tr", has_text="needs_attention").get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("bronze/medical_claims landing_reconciles").first).to_be_visible()
    expect(dialog.get_by_text(f"{REFUSED_DAY} not ingested").first).to_be_visible()
    _screenshot(page, "gate-summary")
    page.get_by_role("button", name="Close").click()

    # the audit log is an asset with documented columns
    page.goto(f"{dagster_ui}/assets/governance/model_audit_log")
    expect(page.get_by_text("Who launched the promotion").first).to_be_visible()
    expect(page.get_by_text("True when the version became champion").first).to_be_visible()
