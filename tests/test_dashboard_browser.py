"""The dashboard in a real headless Chromium (Debian's `chromium` driven by Selenium through
`chromedriver`) against a real `kitaru server start` process: a user logs in with an API
key, answers a flow's three waits through forms generated from their schemas (a bool, a
pydantic model with a list, a plain continue gate) and sees the execution complete; and
every page is visited and saved as a screenshot (the path is printed). The browser's
console must show no error, a Content-Security-Policy violation included."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, wait_for_execution

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TIMEOUT = 60

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are missing; scripts/setup.sh installs them")
        pytest.skip("chromium / chromium-driver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real server process on a free port, an operator key, and where its processes log."""
    made = run_cli("auth", "service-accounts", "create", "web")
    assert made.returncode == 0, made.stderr
    token = json.loads(run_cli("auth", "api-keys", "create", "web", "--scope", "operator",
                               "-o", "json").stdout)["token"]
    with Processes(tmp_path / "logs") as procs:
        proc, base = procs.server(cwd=tmp_path, timeout=TIMEOUT)
        yield {"base": base, "token": token, "procs": procs, "proc": proc}


def suspended_review(server: dict[str, Any], tmp_path: Path) -> tuple[str, Path]:
    """tests/e2e_flows/review_flow.py run to its first wait; its process has left."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    procs: Processes = server["procs"]
    code, out = procs.finish(procs.python(str(FLOWS / "review_flow.py"), str(workdir), "0.3", cwd=FLOWS))
    assert code == 0, out
    return (workdir / "exec_id").read_text(), workdir


def until(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; page: {driver.current_url}\n"
                             f"{driver.find_element('tag name', 'body').text[:2000]}") from None


def find(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return until(driver, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None), css)


def log_in(driver: Any, base: str, token: str, path: str = "/dashboard/") -> None:
    driver.get(base + path)
    assert "/dashboard/login" in driver.current_url
    find(driver, "#api_key").send_keys(token)
    find(driver, "form button[type=submit]").click()
    until(driver, lambda d: "/login" not in d.current_url, "the page after logging in")


def console_errors(driver: Any) -> list[str]:
    """Script errors and CSP violations the browser reported (a refused API call, which the
    page shows as a message, is not one)."""
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"]
            or (e["level"] == "SEVERE" and "Failed to load resource" not in e["message"])]


def shoot(driver: Any, shots: Path, name: str) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shots / f"{name}.png"))


def test_a_wait_answered_through_the_form_completes_the_execution(
    browser: Any, server: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    exec_id, workdir = suspended_review(server, tmp_path)
    base = server["base"]
    shots = tmp_path / "screenshots"
    log_in(browser, base, server["token"])
    row = find(browser, f'tr[data-exec="{exec_id}"]')
    assert "waiting" in row.text and "review" in row.text and "wait 'approve'" in row.text
    row.find_element(By.CSS_SELECTOR, "a").click()
    until(browser, lambda d: d.current_url.endswith(f"/dashboard/executions/{exec_id}"), "the execution page")

    # approve: schema bool -> a yes/no choice
    form = find(browser, "#wait-form")
    assert "Publish 'Why durable agents matters'?" in find(browser, "#wait").text
    shoot(browser, shots, "wait-approve")
    form.find_element(By.CSS_SELECTOR, "input[type=radio][value=true]").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # edits: the Edits model -> a title field and a list of tags
    until(browser, lambda d: "edits" in d.find_element(By.ID, "wait").text, "the `edits` wait's form")
    form = find(browser, "#wait-form")
    title = form.find_element(By.CSS_SELECTOR, "input[name=title]")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()  # title is required
    assert title.get_attribute("validationMessage")
    title.send_keys("Field notes")
    form.find_element(By.CSS_SELECTOR, "fieldset.array button.add").click()
    form.find_element(By.CSS_SELECTOR, "fieldset.array .item input").send_keys("kitaru")
    shoot(browser, shots, "wait-edits")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # go: no schema -> a continue button
    until(browser, lambda d: "Go live now?" in d.find_element(By.ID, "wait").text, "the `go` gate")
    find(browser, "#wait-form button[type=submit]").click()

    until(browser, lambda d: d.find_element(By.ID, "app").get_attribute("data-status") == "completed",
          "the execution to complete")
    assert "completed" in find(browser, "#summary h1 .badge").text
    until(browser, lambda d: "published: Field notes: Why durable agents matters #kitaru"
          in d.find_element(By.ID, "flow-io").text, "the flow's result on the page")
    shoot(browser, shots, "execution-completed")
    final = wait_for_execution(exec_id, lambda e: e.status.value == "completed", "completion")
    assert final.waits[1]["value"] == {"title": "Field notes", "tags": ["kitaru"]}
    assert (workdir / "runs.log").read_text().split() == ["write_draft", "apply_edits", "publish"]
    assert console_errors(browser) == []
    print(f"\nscreenshots: {shots}")


def demo_run(server: dict[str, Any], tmp_path: Path, topic: str) -> str:
    """tests/e2e_flows/dashboard_flow.py run to completion; its execution id."""
    workdir = tmp_path / topic.replace(" ", "-")
    workdir.mkdir()
    procs: Processes = server["procs"]
    code, out = procs.finish(procs.python(str(FLOWS / "dashboard_flow.py"), str(workdir), topic, cwd=FLOWS))
    assert code == 0, out
    return (workdir / "exec_id").read_text()


def test_every_page_renders_and_is_saved_as_a_screenshot(
    browser: Any, server: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    deployed = run_cli("flow", "deploy", f"{FLOWS / 'dashboard_flow.py'}:dashboard_demo", "--tag",
                       "production", "--input", '{"topic": "deployed agents"}', cwd=FLOWS)
    assert deployed.returncode == 0, deployed.stderr
    first = demo_run(server, tmp_path, "durable agents")
    second = demo_run(server, tmp_path, "batch jobs")
    base = server["base"]
    shots = tmp_path / "screenshots"
    browser.get(base + "/dashboard/")
    find(browser, "#api_key")
    shoot(browser, shots, "01-login")
    log_in(browser, base, server["token"])

    find(browser, f'tr[data-exec="{first}"]')
    find(browser, f'tr[data-exec="{second}"]')
    shoot(browser, shots, "02-executions")

    # the execution: the agent's checkpoint with its model and tool calls nested under it
    browser.get(f"{base}/dashboard/executions/{first}")
    find(browser, 'li.call[data-call="research#1"] button').click()
    nested = find(browser, 'li.call[data-call="research#1"] ul.events')
    assert "model_request#1" in nested.text and "lookup" in nested.text
    detail = find(browser, "#detail")
    until(browser, lambda d: "model and tool calls" in detail.text.lower(), "the agent's calls in the detail")
    assert "model call" in find(browser, "#summary").text  # token totals
    shoot(browser, shots, "03-execution-agent")
    find(browser, 'li.call[data-call="write_report#1"] button').click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#detail .markdown h1"), "the markdown")
    assert find(browser, "#detail .markdown h1").text == "Report on durable agents"
    shoot(browser, shots, "04-execution-markdown")
    find(browser, 'li.call[data-call="chart#1"] button').click()
    image = find(browser, "#detail img.artifact-image")
    until(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image) == 48,
          "the chart image")
    shoot(browser, shots, "05-execution-image")

    # replay from a chosen checkpoint with an override of an earlier call's output
    find(browser, "#actions").find_element(By.XPATH, ".//button[text()='Replay…']").click()
    Select(find(browser, "#replay-at")).select_by_value("write_report#1")
    Select(find(browser, "#replay-target")).select_by_value("research#1")
    find(browser, "#replay-override").send_keys('"notes from the override"')
    shoot(browser, shots, "06-replay-form")
    find(browser, "#replay-form button[type=submit]").click()
    find(browser, "#replay-form .ok a").click()
    until(browser, lambda d: d.find_element(By.ID, "app").get_attribute("data-status") == "completed",
          "the replay to complete")
    until(browser, lambda d: "notes from the override" in d.find_element(By.ID, "flow-io").text,
          "the replay's result, made from the override")
    assert f"Replay of\n{first[:12]}" in find(browser, "#summary").text
    shoot(browser, shots, "07-replay")

    # compare the two runs side by side
    browser.get(f"{base}/dashboard/")
    find(browser, f'tr[data-exec="{first}"] input[type=checkbox]').click()
    find(browser, f'tr[data-exec="{second}"] input[type=checkbox]').click()
    find(browser, "form.filters button:not([type=submit])").click()
    until(browser, lambda d: "/dashboard/diff?" in d.current_url, "the compare page")
    changed = find(browser, 'section.diff-call[data-call="write_report#1"]')
    assert changed.get_attribute("data-changed") == "true"
    until(browser, lambda d: changed.find_elements(By.CSS_SELECTOR, ".diff-lines .del"), "the line diff")
    assert "Report on batch jobs" in changed.text and "Report on durable agents" in changed.text
    shoot(browser, shots, "08-diff")

    browser.get(f"{base}/dashboard/memory")
    until(browser, lambda d: "last_topic" in d.find_element(By.ID, "app").text, "the memory keys")
    shoot(browser, shots, "09-memory")

    browser.get(f"{base}/dashboard/deployments")
    flow_card = find(browser, 'section.deployment[data-flow="dashboard_demo"]')
    until(browser, lambda d: "production" in flow_card.text and "v1" in flow_card.text, "the version")
    assert "deployed agents" in flow_card.text  # its defaults
    shoot(browser, shots, "10-deployments")
    # invoke the version tagged production: the snapshot runs with its deployed defaults
    Select(flow_card.find_element(By.CSS_SELECTOR, "form.invoke select")).select_by_value("tag:production")
    flow_card.find_element(By.CSS_SELECTOR, "form.invoke button[type=submit]").click()
    find(browser, "form.invoke .ok a").click()
    until(browser, lambda d: d.find_element(By.ID, "app").get_attribute("data-status") == "completed",
          "the invocation to complete")
    until(browser, lambda d: "Report on deployed agents" in d.find_element(By.ID, "flow-io").text,
          "the invocation's result")
    assert "dashboard_demo v1" in find(browser, "#summary").text

    assert console_errors(browser) == []
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-login.png", "02-executions.png", "03-execution-agent.png", "04-execution-markdown.png",
        "05-execution-image.png", "06-replay-form.png", "07-replay.png", "08-diff.png", "09-memory.png",
        "10-deployments.png"]
    print(f"\nscreenshots: {shots}")
