"""End to end in a real browser: `ltae dashboard` serves a finished run, headless Chromium (Debian's
package, installed by the setup when missing; nothing downloaded at run time) opens it, moves the
budget slider, and the allocation table must change with no exception text on the page. Screenshots
of every page are saved under the test's tmp folder.

The test skips, saying why, only when Chromium cannot be installed or selenium is missing."""

from __future__ import annotations

import time

import pytest
from browser import (
    ensure_chromium,
    exception_text,
    full_screenshot,
    make_driver,
    page_url,
    start_dashboard,
    stop,
    wait_idle,
)


@pytest.fixture(scope="module")
def browser_ready():
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    pytest.importorskip("streamlit", reason="streamlit is not installed (pip install -e '.[dashboard]')")
    reason = ensure_chromium()
    if reason:
        pytest.skip(f"no headless browser: {reason}")


@pytest.fixture(scope="module")
def served(browser_ready, small_run):
    run_dir = small_run[0]
    proc, url = start_dashboard(run_dir.parent, run_dir)
    driver = make_driver()
    try:
        yield driver, url, run_dir
    finally:
        driver.quit()
        stop(proc)


def _allocation_text(driver) -> str:
    from selenium.webdriver.common.by import By

    tables = [t.text for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"]')]
    hits = [t for t in tables if "optimal spend" in t]
    return hits[0] if hits else ""


def test_budget_slider_moves_the_allocation(served, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, url, run_dir = served
    driver.get(page_url(url, "Budget", run_dir))
    wait_idle(driver, 120)
    before = _allocation_text(driver)
    assert "optimal spend" in before and "Content" in before, before[:500]
    assert exception_text(driver) == []
    slider = driver.find_element(By.CSS_SELECTOR, '[data-testid="stSlider"] input[type="range"]')
    value = float(slider.get_attribute("value"))
    driver.execute_script("arguments[0].focus();", slider)
    for _ in range(3):
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
    t0 = time.time()
    after = before
    while time.time() - t0 < 60 and after == before:
        time.sleep(0.2)
        after = _allocation_text(driver)
    wait_idle(driver, 60)
    after = _allocation_text(driver)
    assert float(slider.get_attribute("value")) > value
    assert after and after != before, "the allocation table did not change after the slider moved"
    assert exception_text(driver) == []
    shot = full_screenshot(driver, tmp_path / "budget.png")
    assert shot.stat().st_size > 20_000


@pytest.mark.parametrize("page", ["Overview", "Scenarios"])
def test_other_pages_render(served, tmp_path, page):
    from selenium.webdriver.common.by import By

    driver, url, run_dir = served
    driver.get(page_url(url, page, run_dir))
    wait_idle(driver, 120)
    body = driver.find_element(By.TAG_NAME, "body").text
    assert f"{page}: run" in body
    assert ("ROI per channel" in body) if page == "Overview" else ("Incremental return" in body)
    assert exception_text(driver) == []
    assert full_screenshot(driver, tmp_path / f"{page.lower()}.png").stat().st_size > 20_000


def test_missing_browser_gives_a_reason(monkeypatch):
    """Without Chromium and without a way to install it the setup returns the reason (the test then
    skips with it) instead of passing silently."""
    import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    reason = browser.ensure_chromium()
    assert reason and "apt-get install chromium chromium-driver" in reason
