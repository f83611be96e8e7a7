"""Headless Chromium (Debian's package) driving the dashboard: shared by the end-to-end test and the
scripts that time the dashboard and take the screenshots of docs/dashboard.md (benchmarks/dashboard.py).

Nothing is downloaded at run time: the browser is /usr/bin/chromium with /usr/bin/chromedriver from
``apt-get install chromium chromium-driver`` (``ensure_chromium`` runs that when they are missing and
it can), driven by selenium (the ``dev`` extra).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def ensure_chromium(timeout: int = 600) -> str | None:
    """None when Chromium and its driver are there (installing them with apt-get when missing and
    possible); otherwise the reason they are not."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return "Chromium is missing and there is no apt-get to install it (apt-get install chromium chromium-driver)"
    cmd = [apt, "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "Chromium is missing and installing it needs root (apt-get install chromium chromium-driver)"
        cmd = ["sudo", "-n", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"installing Chromium failed: {e}"
    if proc.returncode or not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return f"apt-get install chromium chromium-driver failed (exit {proc.returncode}): {tail[0]}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(runs_dir, run_dir=None, port: int | None = None, env: dict | None = None,
                    timeout: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Start ``ltae dashboard`` on 127.0.0.1 and wait until Streamlit answers; returns (process, url)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "ltae", "dashboard", "--runs", str(runs_dir), "--port", str(port)]
    if run_dir is not None:
        cmd += ["--run", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited ({proc.returncode}): {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"the dashboard did not answer on {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the dashboard we started (its own process group: the CLI and its Streamlit child)."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def make_driver(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='ltae-chromium-')}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def page_url(url: str, page: str, run_dir) -> str:
    return f"{url}/?{urllib.parse.urlencode({'page': page, 'run': str(run_dir)})}"


def wait_idle(driver, timeout: float = 60.0, ready: str = '[data-testid="stMain"] h1') -> None:
    """Wait until the app has rendered (an element matching ``ready``: the page title) and finished
    its script run (Streamlit's running-status widget gone), three polls in a row."""
    from selenium.webdriver.common.by import By

    t0 = time.time()
    quiet = 0
    while time.time() - t0 < timeout:
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        shown = driver.find_elements(By.CSS_SELECTOR, ready)
        quiet = quiet + 1 if (shown and not running) else 0
        if quiet >= 3:
            return
        time.sleep(0.3)
    raise TimeoutError("the dashboard did not finish rendering")


def exception_text(driver) -> list[str]:
    """Texts of Streamlit exception boxes and tracebacks on the page (empty when clean)."""
    from selenium.webdriver.common.by import By

    boxes = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')]
    body = driver.find_element(By.TAG_NAME, "body").text
    if "Traceback (most recent call last)" in body:
        boxes.append("Traceback in the page text")
    return boxes


def full_screenshot(driver, path, width: int = 1400) -> Path:
    """Screenshot of the whole app: the window is sized to the bottom of the page's content first."""
    driver.set_window_size(width, 800)
    time.sleep(0.5)
    h = driver.execute_script(
        "const els = document.querySelectorAll('[data-testid=\"stMain\"] *');"
        "let b = 0; for (const e of els) { const r = e.getBoundingClientRect(); if (r.height > 0) "
        "b = Math.max(b, r.bottom + window.scrollY); } return b;")
    driver.set_window_size(width, min(max(int(h) + 160, 800), 8000))
    time.sleep(1.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
