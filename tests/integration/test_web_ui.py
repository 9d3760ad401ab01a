"""The web UI in a real headless Chromium against a real engine with real invocations.

Chromium is the system's (`/usr/bin/chromium`, installed by `.ci/run` when missing); the
browser is never downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_process import EngineProcess
from http_json import get, post, wait_until
from playwright.sync_api import Browser, Page, expect, sync_playwright

APP = Path(__file__).parent.parent / "apps" / "observe_app.py"
CHROMIUM = os.environ.get("HEADWAY_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set HEADWAY_CHROMIUM")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page()
    opened.set_default_timeout(10_000)
    opened.on("dialog", lambda dialog: dialog.accept())  # the confirm() of cancel and kill
    yield opened
    opened.close()


@pytest.fixture
def engine(engine_factory: Any) -> EngineProcess:
    started: EngineProcess = engine_factory(APP, env={"HEADWAY_SUSPEND_AFTER": "0.2"}).start()
    return started


def status_of(engine: EngineProcess, invocation_id: str) -> str:
    return str(get(f"{engine.admin}/invocations/{invocation_id}")[1]["status"])


def test_list_filter_detail_and_cancel(engine: EngineProcess, page: Page) -> None:
    assert post(engine.ingress + "/Counter/ada/add", 5) == (200, 5)
    _, sent = post(engine.ingress + "/Sleeper/nap/send", 3600)
    napping = sent["invocationId"]
    wait_until(lambda: status_of(engine, napping) == "suspended", what="suspension")

    page.goto(engine.admin + "/ui")
    rows = page.locator("#list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#list")).to_contain_text("Counter/ada/add")
    expect(page.locator("#list")).to_contain_text("Sleeper/nap")

    page.select_option("select[name=status]", "suspended")
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(napping)
    page.fill("input[name=service]", "Counter")
    page.click("#filters button[type=submit]")
    expect(page.locator("#list")).to_have_text("No invocations.")

    page.goto(f"{engine.admin}/ui/#/invocations?key=ada")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.locator("[data-status]")).to_have_text("completed")
    expect(page.locator("ol.timeline li")).to_have_count(2)
    expect(page.locator("ol.timeline li")).to_contain_text(
        ["#0 GetState('total')", "#1 SetState('total')"]
    )
    expect(page.locator("[data-outcome]")).to_have_text('value "5"')

    page.goto(f"{engine.admin}/ui/#/invocation/{napping}")
    expect(page.locator("[data-status]")).to_have_text("suspended")
    expect(page.locator("ol.timeline li.pending")).to_contain_text("Sleep")
    page.click("#cancel")
    expect(page.locator("[data-status]")).to_have_text("completed")
    expect(page.locator("[data-outcome]")).to_have_text("failure 409: cancelled")
    assert status_of(engine, napping) == "completed"


def test_sql_console_state_and_playground(engine: EngineProcess, page: Page) -> None:
    assert post(engine.ingress + "/Counter/ada/add", 5) == (200, 5)

    page.goto(engine.admin + "/ui/#/sql")
    page.fill("#query", "select service_key, key, value_utf8 from state")
    page.click("#run")
    expect(page.locator("[data-row-count]")).to_have_text("1 row")
    expect(page.locator("#result tbody tr")).to_have_text(["adatotal5"])
    page.fill("#query", "selec 1")
    page.click("#run")
    expect(page.locator("#result .error")).to_contain_text("syntax error")

    page.goto(engine.admin + "/ui/#/services")
    form = page.locator("form.invoke[data-service=Counter][data-handler=add]")
    form.locator("input[name=key]").fill("ada")
    form.locator("input[name=body]").fill("2")
    form.locator("button").click()
    expect(form.locator("output")).to_have_text("→ 7")
    relay = page.locator("form.invoke[data-service=Front][data-handler=relay]")
    relay.locator("input[name=body]").fill("20")
    relay.locator("button").click()
    expect(relay.locator("output")).to_have_text("→ 41")

    page.goto(engine.admin + "/ui/#/state?service=Counter&key=ada")
    expect(page.locator("#state tbody tr")).to_have_text(["total7"])
