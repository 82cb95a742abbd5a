"""The static report in a real browser: Debian's Chromium driven by Playwright, pages opened from file://."""

from pathlib import Path

import pytest

from mlkit.archive import Archive
from mlkit.registry import Registry, promote

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PREP = "import mlkit\nmlkit.log_metric('rows', 120)\nmlkit.log_outcome('prepared 120 rows')"
FIT = """import mlkit, matplotlib.pyplot as plt
if upstream_run:
    mlkit.log_upstream(upstream_run)
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1], [0, lr])
mlkit.log_figure("curve", fig)
open("model.bin", "w").write(str(lr))
mlkit.log_artifact("model.bin")
mlkit.log_metric("auc", 0.7 + lr)"""


def launch(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A project with three real runs (one with a figure, one consuming another), a registered model, its report."""
    from conftest import Project
    project = Project(tmp_path_factory.mktemp("report"))
    project.job("prep", "", PREP)
    project.job("fit", "lr: float = 0.1\nupstream_run: str = ''", FIT)
    prep = project.run_json("prep", check=0)
    project.run_json("fit", check=0)
    fit = project.run_json("fit", "-p", "lr", "0.2", "-p", "upstream_run", prep["id"], check=0)
    archive = Archive(project.archive)
    registry = Registry(archive)
    registry.register("demo", archive.get_run(fit["id"]), artifact="model.bin")
    promote(registry, "demo", 1, reason="first model")
    project.mlkit("report", "--archive", project.archive, check=0)
    return {"root": project.archive / ".report", "prep": prep["id"], "fit": fit["id"], "shots": project.root}


def watch(page, problems: list):
    """Record console errors, failed requests and any request that leaves the site."""
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("request", lambda r: problems.append(f"external: {r.url}")
            if not r.url.startswith(("file://", "data:")) else None)


def test_every_page_opens_offline_with_its_images(site):
    from playwright.sync_api import sync_playwright
    pages = sorted(site["root"].rglob("*.html"))
    assert len(pages) >= 10, pages
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            problems = []
            watch(page, problems)
            images = 0
            for path in pages:
                page.goto(path.as_uri(), wait_until="load")
                widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : -1)")
                assert all(width > 0 for width in widths), f"{path.name}: image widths {widths}"
                images += len(widths)
            assert images >= 3, "the figure on its run page, in its notebook, and more"
            assert problems == []
        finally:
            browser.close()


def rows(page) -> list:
    return page.eval_on_selector_all("#runs tbody tr", "trs => trs.map(tr => tr.dataset.id)")


def test_runs_table_filters_sorts_and_links_lineage_and_notebook(site):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems = []
            watch(page, problems)
            page.goto((site["root"] / "index.html").as_uri())
            assert len(rows(page)) == 3
            page.select_option("#job", "fit")
            assert len(rows(page)) == 2 and site["prep"] not in rows(page)
            page.screenshot(path=str(site["shots"] / "index-filtered.png"), full_page=True)
            page.click("#runs thead button[data-key='m:auc']")
            assert rows(page)[0] == site["fit"]  # best auc first (lr 0.2)
            page.click("#runs thead button[data-key='m:auc']")
            assert rows(page)[-1] == site["fit"]
            page.select_option("#job", "")
            page.fill("#text", "prep")
            assert rows(page) == [site["prep"]]
            page.fill("#text", "")
            page.click(f"a[href='runs/{site['fit']}.html']")
            assert page.url.endswith(f"runs/{site['fit']}.html")
            assert page.eval_on_selector("img.artifact", "e => e.naturalWidth") > 0
            page.screenshot(path=str(site["shots"] / "run.png"), full_page=True)
            page.click("a.upstream")
            assert page.url.endswith(f"runs/{site['prep']}.html")
            assert "prepared 120 rows" in page.inner_text("main")
            page.click("a.downstream")
            assert page.url.endswith(f"runs/{site['fit']}.html")
            page.click("#notebook")
            assert page.url.endswith(f"notebooks/{site['fit']}.html")
            assert page.eval_on_selector_all(".notebook img", "els => els.map(e => e.naturalWidth)")[0] > 0
            # the stylesheet matches the classic class names of nbconvert's basic template
            style = "e => getComputedStyle(e).backgroundColor"
            assert page.eval_on_selector(".notebook .input_area", style) == "rgb(246, 248, 250)"
            assert page.eval_on_selector(".notebook .highlight .kn", "e => getComputedStyle(e).color") != "rgb(34, 34, 34)"
            page.screenshot(path=str(site["shots"] / "notebook.png"), full_page=True)
            page.goto((site["root"] / "registry.html").as_uri())
            assert "first model" in page.inner_text(".timeline")
            page.goto((site["root"] / "jobs" / "fit.html").as_uri())
            assert page.locator("svg.chart").count() == 2  # auc against lr, and against upstream_run
            assert page.locator("svg.chart circle").count() == 4
            page.screenshot(path=str(site["shots"] / "job.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
