"""The page at / in a real browser: Debian's chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.ecosystem.conftest import API_KEY

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out, which this network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts_dir(tmp_path: Path) -> Path:
    """CI collects RAGQA_ARTIFACTS_DIR; locally the screenshots go to the test's tmp folder."""
    folder = Path(os.environ.get("RAGQA_ARTIFACTS_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # The page's CSP forbids eval, which Playwright's wait_for_function uses for its
        # predicates; the CSP itself is tested in tests/reliability.
        page = browser.new_page(viewport={"width": 1200, "height": 1000}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_ask_stream_and_open_a_citation(page, keyed_server, tmp_path):
    page.goto(keyed_server.url + "/")
    # Without the key the page says why it cannot list collections.
    page.wait_for_selector("#status.error")
    assert "API key" in page.text_content("#status")

    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_function("document.querySelectorAll('#collection option').length > 0")
    assert page.input_value("#collection") == "default"
    page.select_option("#prompt-mode", "one_shot")
    page.fill("#question", "Does ragqa need a GPU?")
    page.click("#ask")

    # The sources arrive first, then the answer streams in, then the status shows the timings.
    page.wait_for_selector("#sources li", timeout=300_000)
    page.wait_for_function(
        "document.getElementById('status').textContent.includes('first token')", timeout=300_000
    )
    answer = page.text_content("#answer")
    assert answer.strip()
    assert page.locator("#sources li").count() >= 1
    assert "faq.txt" in page.text_content("#sources")

    page.screenshot(path=str(artifacts_dir(tmp_path) / "web-answer.png"), full_page=True)

    # A citation opens the passage it cites: in the answer if the model cited, else in the list.
    in_answer = page.locator("#answer a.cite:not(.missing)")
    citation = in_answer.first if in_answer.count() else page.locator("#sources a.cite").first
    number = int(citation.get_attribute("data-n"))
    citation.click()
    dialog = page.locator("dialog#passage")
    dialog.wait_for(state="visible")
    assert dialog.locator("#passage-title").text_content().startswith(f"[{number}]")
    assert len(dialog.locator("#passage-text").text_content()) > 50
    shot = artifacts_dir(tmp_path) / "web-page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    page.click("dialog#passage button")

    # The default mode with the bundled model quotes the evidence: each citation opens its
    # passage with the supporting sentence highlighted; the page declares the answer's language.
    assert page.get_attribute("#answer", "lang") == "en"
    assert page.locator("#mode option").count() == 4 and page.locator("#strategy option").count() == 3
    assert page.locator("#upload").count() == 1
    assert page.locator("#citations li").count() >= 1
    page.click("#citations li a")
    dialog.wait_for(state="visible")
    highlighted = dialog.locator("mark.support").text_content()
    assert highlighted and highlighted in page.text_content("#answer")
    page.screenshot(path=str(artifacts_dir(tmp_path) / "web-citation.png"), full_page=True)
    page.click("dialog#passage button")

    # A Korean question: the answer is Korean, and the page says so.
    page.fill("#question", "ragqa는 한국어 문서를 어떻게 검색하나요?")
    page.click("#ask")
    page.wait_for_function(
        "document.getElementById('answer').lang === 'ko' && !document.getElementById('ask').disabled",
        timeout=300_000,
    )
    assert any("\uac00" <= ch <= "\ud7a3" for ch in page.text_content("#answer"))
    page.screenshot(path=str(artifacts_dir(tmp_path) / "web-korean.png"), full_page=True)

    page.click("#show-map")
    page.wait_for_function("document.getElementById('map').naturalWidth > 0", timeout=300_000)
    assert page.evaluate("document.getElementById('map').naturalWidth") == 1200
