"""Check the interactive cells in a real browser: JupyterLab on a free local port, the notebook opened and run,
the try panel's Train button clicked, a digit drawn on the canvas, screenshots saved.

Outside CI (it takes a few minutes and needs a browser). Once, on Debian/Ubuntu:

    sudo apt-get install chromium
    .venv/bin/python -m pip install -r Code/scripts/requirements-browser.txt

then, from the project folder:

    .venv/bin/python Code/scripts/browser_check.py [--out FOLDER] [--chromium /usr/bin/chromium]

It works on a scratch copy of the project (your notebooks and results are not touched) and prints what it
clicked, what the page showed and where the screenshots are.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(copy: Path, port: int, token: str) -> subprocess.Popen:
    settings = copy.parent / "lab settings"  # every cell rendered (no windowing), so off-screen widgets exist
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True, exist_ok=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy / "Code"), "MNIST_RETRAIN": "0",
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    log = open(copy / "jupyterlab.log", "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={copy}"]
                              + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"JupyterLab did not start on port {port}; see {copy / 'jupyterlab.log'}")


def run_all(page, notebook: str, lab_url: str) -> None:
    page.goto(f"{lab_url}/lab/tree/Code/{notebook}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    print(f"  {notebook}: Run > Run All Cells")


def wait_idle(page, timeout_s: float) -> None:
    page.wait_for_timeout(2000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_s * 1000)


def check_panel(page, out: Path, lab_url: str) -> str:
    run_all(page, "03_finetune_last_layer.ipynb", lab_url)
    train = page.locator("button.jupyter-button:has-text('Train')").first
    train.wait_for(timeout=600_000)
    wait_idle(page, 600)
    train.scroll_into_view_if_needed()
    before = page.locator("text=/try \\d+: best validation accuracy/").count()
    train.click()
    status = page.locator("text=/try \\d+: best validation accuracy/").nth(before)
    status.wait_for(timeout=120_000)
    panel = train.locator("xpath=ancestor::div[contains(@class,'widget-hbox')][1]")
    panel.screenshot(path=str(out / "try_panel.png"))
    return status.inner_text()


def check_canvas(page, out: Path, lab_url: str) -> str:
    run_all(page, "06_analysis_and_report.ipynb", lab_url)
    canvas = page.locator("canvas").last
    page.locator("button.jupyter-button:has-text('Clear')").first.wait_for(timeout=600_000)
    wait_idle(page, 600)
    page.locator("button.jupyter-button:has-text('Clear')").first.click()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.35 * w, y0 + 0.25 * h)  # a 7: the bar, then the stem
    page.mouse.down()
    for t in range(11):
        page.mouse.move(x0 + (0.35 + 0.3 * t / 10) * w, y0 + 0.25 * h)
    for t in range(11):
        page.mouse.move(x0 + (0.65 - 0.2 * t / 10) * w, y0 + (0.25 + 0.5 * t / 10) * h)
    page.mouse.up()
    status = page.locator("text=/reads \\d/").last
    status.wait_for(timeout=60_000)
    pad = canvas.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
    pad.screenshot(path=str(out / "draw_pad.png"))
    return status.inner_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "mnist-transfer-browser-check")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mnist-transfer-browser-"))
    copy = scratch / "project copy"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "backups", "__pycache__"))
    port, token = free_port(), secrets.token_hex(16)
    server = None
    lab_url = f"http://127.0.0.1:{port}"
    try:
        server = start_lab(copy, port, token)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{lab_url}/lab?token={token}")
            try:
                start = time.perf_counter()
                print("panel:", check_panel(page, args.out, lab_url), f"({time.perf_counter() - start:.0f} s)")
                start = time.perf_counter()
                print("canvas:", check_canvas(page, args.out, lab_url), f"({time.perf_counter() - start:.0f} s)")
            finally:
                page.screenshot(path=str(args.out / "last_page.png"), full_page=False)
                browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"screenshots: {args.out / 'try_panel.png'}, {args.out / 'draw_pad.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
