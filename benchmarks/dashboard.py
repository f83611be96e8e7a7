"""Dashboard speed (a benchmark, not a test): opening a run <= 2 s, a budget-slider move -> new
allocation <= 1 s, a scenario edit -> new comparison. Optionally the screenshots of docs/dashboard.md.

``python -m benchmarks.dashboard [--run DIR] [--moves 10] [--browser] [--screenshots docs/images]``

Without ``--run`` a demo run (208 weeks, 4 channels, production settings; ``--quick``: small draws) is
made in a temporary folder first. Timings, each in a fresh Streamlit session (``AppTest``, the app's
script run in this process, as the server runs it):

* ``first_page_new_process_s``: the first page of a new process (Python imports included: once per
  server);
* ``open_run_cold_s``: a page load with empty caches (reading the run, the optimiser's response
  model, the Overview page's contributions and charts): opening a run;
* ``open_run_warm_s``: the same page in a new session (the run is cached);
* ``slider_move_s``: the budget slider moved to a new value (a new optimisation), median and max of
  ``--moves`` moves;
* ``scenario_edit_s``: one plan's input changed on the Scenarios page (a new scenario).

``--browser`` adds the same measures seen from headless Chromium driving ``ltae dashboard`` (the first
page of a new server, then each page's load to its rendered title; one key press on the slider to a
changed allocation table; a page switch in the sidebar to the new page rendered). Writes JSON to
benchmarks/results/dashboard.json (``--out``). ``--screenshots DIR`` saves one PNG per page there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src" / "ltae" / "serve" / "dashboard.py"
sys.path.insert(0, str(ROOT / "tests"))  # the browser helpers shared with the end-to-end test


def make_run(folder: Path, quick: bool) -> Path:
    from ltae import pipeline
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv

    save_to_csv(generate_synthetic_data(seed=42), folder / "data")
    cfg = {"sampling": {"draws": 200, "tune": 200, "seed": 42}} if quick else {"sampling": {"seed": 42}}
    pipeline.run(folder / "data", folder / "runs" / "demo", cfg, store_path=folder / "runs" / "ltae_runs.duckdb")
    return folder / "runs" / "demo"


def _app(run_dir: Path, page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(SCRIPT), default_timeout=300)
    at.query_params["run"] = str(run_dir)
    at.query_params["page"] = page
    return at


def apptest_timings(run_dir: Path, moves: int) -> dict:
    import streamlit as st

    out = {}
    at = _app(run_dir, "Overview")
    t = time.perf_counter()
    at.run()
    out["first_page_new_process_s"] = time.perf_counter() - t  # imports included (once per server)
    assert not at.exception, [e.value for e in at.exception]
    st.cache_resource.clear()
    st.cache_data.clear()
    at = _app(run_dir, "Overview")
    t = time.perf_counter()
    at.run()
    out["open_run_cold_s"] = time.perf_counter() - t
    at = _app(run_dir, "Overview")
    t = time.perf_counter()
    at.run()
    out["open_run_warm_s"] = time.perf_counter() - t
    at = _app(run_dir, "Budget")
    t = time.perf_counter()
    at.run()
    out["budget_page_s"] = time.perf_counter() - t
    s = at.slider[0]
    lo, hi, step = s.min, s.max, s.step
    values = [lo + (hi - lo) * (k + 1) / (moves + 1) for k in range(moves)]
    times = []
    for v in values:
        v = round(v / step) * step
        t = time.perf_counter()
        at.slider[0].set_value(v).run()
        times.append(time.perf_counter() - t)
        assert not at.exception, [e.value for e in at.exception]
    out["slider_move_s"] = {"median": statistics.median(times), "max": max(times), "all": times}
    at = _app(run_dir, "Scenarios")
    t = time.perf_counter()
    at.run()
    out["scenario_page_s"] = time.perf_counter() - t
    times = []
    for weeks in (8, 20, 26):
        t = time.perf_counter()
        at.number_input(key="weeks-0").set_value(weeks).run()
        times.append(time.perf_counter() - t)
    out["scenario_edit_s"] = {"median": statistics.median(times), "max": max(times), "all": times}
    return out


def browser_timings(run_dir: Path, moves: int, shots: Path | None) -> dict:
    import browser as b
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    reason = b.ensure_chromium()
    if reason:
        return {"skipped": reason}
    proc, url = b.start_dashboard(run_dir.parent, run_dir)
    driver = b.make_driver()
    out: dict = {}

    def table_text() -> str:
        hits = [t.text for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"]')
                if "optimal spend" in t.text]
        return hits[0] if hits else ""

    try:
        t = time.perf_counter()
        driver.get(b.page_url(url, "Overview", run_dir))
        b.wait_idle(driver, 300)
        out["first_page_new_server_s"] = time.perf_counter() - t  # the server's imports included
        t = time.perf_counter()
        driver.get(b.page_url(url, "Overview", run_dir))
        b.wait_idle(driver, 300)
        out["page_reload_s"] = time.perf_counter() - t  # a new browser session: Streamlit's JS loads again
        for page in ("Overview", "Budget", "Scenarios"):
            if page != "Overview":  # switch pages as a user does: the sidebar, no reload
                label = next(e for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] label')
                             if e.text.strip() == page)
                marker = "optimal spend" if page == "Budget" else "P(total > 0)"

                def shown(page=page, marker=marker) -> bool:
                    titles = [h.text for h in driver.find_elements(By.TAG_NAME, "h1")]
                    tables = [x.text for x in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"]')]
                    return any(x.startswith(f"{page}:") for x in titles) and any(marker in x for x in tables)

                t = time.perf_counter()
                label.click()
                while time.perf_counter() - t < 60 and not shown():
                    time.sleep(0.02)
                out[f"switch_to_{page.lower()}_s"] = time.perf_counter() - t  # title and numbers shown
                b.wait_idle(driver, 300)
            if b.exception_text(driver):
                out[f"{page.lower()}_exceptions"] = b.exception_text(driver)
            if page == "Budget":
                times = []
                slider = driver.find_element(By.CSS_SELECTOR, '[data-testid="stSlider"] input[type="range"]')
                for _ in range(moves):
                    before = table_text()
                    driver.execute_script("arguments[0].focus();", slider)
                    t = time.perf_counter()
                    ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()  # one step
                    while table_text() == before and time.perf_counter() - t < 30:
                        time.sleep(0.02)
                    times.append(time.perf_counter() - t)
                    b.wait_idle(driver, 60)
                out["slider_move_to_new_table_s"] = {"median": statistics.median(times), "max": max(times),
                                                     "all": times}
            if shots is not None:
                b.full_screenshot(driver, shots / f"dashboard_{page.lower()}.png")
    finally:
        driver.quit()
        b.stop(proc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dashboard", description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, help="a finished run folder (default: make a demo run)")
    ap.add_argument("--quick", action="store_true", help="the demo run with small draws")
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--browser", action="store_true", help="also measure in headless Chromium")
    ap.add_argument("--screenshots", type=Path, help="save a PNG of each page here (implies --browser)")
    ap.add_argument("--out", type=Path, default=RESULTS / "dashboard.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run.resolve() if args.run else make_run(Path(tmp), args.quick)
        res = {"run": str(run_dir) if args.run else ("demo (quick)" if args.quick else "demo (production)"),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "targets": {"open_run_s": 2.0, "slider_move_s": 1.0}}
        res["apptest"] = apptest_timings(run_dir, args.moves)
        print(json.dumps(res["apptest"], indent=2, default=float))
        if args.browser or args.screenshots:
            res["browser"] = browser_timings(run_dir, min(args.moves, 5), args.screenshots)
            print(json.dumps(res["browser"], indent=2, default=float))
    from ltae.store.artifacts import atomic_write_json

    atomic_write_json(args.out, res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
