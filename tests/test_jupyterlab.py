"""A job notebook in JupyterLab, in a real browser: Run All shows its plots inline and no error."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_report_browser import CHROMIUM_ARGS, launch

REPO = Path(__file__).resolve().parent.parent
JUPYTER = str(Path(sys.executable).with_name("jupyter"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """`jupyter lab` on 127.0.0.1 with a token, serving a copy of the project; stopped by its pid."""
    project = tmp_path / "project"
    project.mkdir()
    for part in ("pyproject.toml", "params", "contracts", "nbs/jobs"):
        source = REPO / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, project / part)
    port, token = free_port(), "mlkit-test-token"
    env = {**os.environ, "MLKIT_ARCHIVE": str(tmp_path / "archive"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("MPLBACKEND", None)
    log = open(tmp_path / "lab.log", "wb")
    server = subprocess.Popen([JUPYTER, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project}",
                               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer in 60 s:\n" + (tmp_path / "lab.log").read_text()[-2000:])
        yield {"base": base, "token": token, "shots": tmp_path}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


def test_run_all_on_train_shows_plots_and_no_error(lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
    assert "--headless=new" in CHROMIUM_ARGS
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['base']}/lab/tree/nbs/jobs/train.ipynb?token={lab['token']}", timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            select = page.locator(".jp-Dialog button:has-text('Select')")
            try:
                select.wait_for(timeout=5_000)  # JupyterLab may ask which kernel to start: the suggested one
                select.click()
            except PlaywrightTimeout:
                pass
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.textContent)")
                if prompts and all("[*]" not in p and p.strip() not in ("[ ]:", "") for p in prompts):
                    break
                time.sleep(0.5)
            else:
                page.screenshot(path=str(lab["shots"] / "jupyterlab-stuck.png"))
                pytest.fail(f"the notebook did not finish in 150 s: prompts {prompts}")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=30_000)
            page.screenshot(path=str(lab["shots"] / "jupyterlab-train.png"), full_page=False)
            outputs = page.inner_text(".jp-Notebook")
            assert "Traceback" not in outputs and "Error" not in page.eval_on_selector_all(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                "els => els.map(e => e.textContent).join(' ')")
            assert "PosixPath(" not in outputs
            widths = page.eval_on_selector_all(".jp-OutputArea-output img", "els => els.map(e => e.naturalWidth)")
            assert len(widths) >= 2 and all(width > 0 for width in widths), widths
            page.locator(".jp-OutputArea-output img").first.scroll_into_view_if_needed()
            page.screenshot(path=str(lab["shots"] / "jupyterlab-plot.png"))
        finally:
            browser.close()
