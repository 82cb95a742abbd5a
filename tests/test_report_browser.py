"""The static report in a real browser: Debian's Chromium driven by Playwright, pages opened from file://."""

import contextlib
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


MARKS = "g.role-mark > path, g.role-mark > line, g.role-mark > text"


def charts_drawn(page) -> list:
    """Wait until every chart of the page is drawn; the number of data marks of each."""
    page.wait_for_function("Array.from(document.querySelectorAll('div.vl')).every(d => d.querySelector('svg'))",
                           timeout=15000)
    return page.eval_on_selector_all("div.vl", f"els => els.map(e => e.querySelectorAll({MARKS!r}).length)")


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
            charts_drawn(page)
            assert page.locator("div.vl").count() == 2  # auc against lr (upstream_run is lineage), the parallel view
            assert page.locator("div.vl >> nth=0").locator(MARKS).count() == 3  # two runs, the best one ringed
            page.screenshot(path=str(site["shots"] / "job.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()


SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "report"  # kept by CI, named in the README


@contextlib.contextmanager
def browsing():
    """A page of Debian's Chromium, 1,400 px wide."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            browser.close()


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory):
    """Every page kind: runs like a pipeline's, a sweep over C = 0.001 … 10, monitoring runs, serving, hostile content."""
    from report_archive import fabricate_archive

    from mlkit.report import build_report
    root = tmp_path_factory.mktemp("report-pages") / "runs"
    ids = fabricate_archive(root)
    build_report(root, workers=1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return root / ".report", ids


def page_kinds(ids: dict) -> dict:
    return {"index": "index.html", "job": "jobs/fit.html", "sweep": f"sweeps/{ids['sweep']}.html",
            "drift": "drift.html", "serving": "serving.html", "pipeline": "pipelines/retrain-20261204-220000.html",
            "registry": "registry.html", "run": f"runs/{ids['sweep_runs'][0]}.html",
            "run-with-notebook": f"runs/{ids['prep']}.html", "notebook": f"notebooks/{ids['prep']}.html"}


def test_every_page_kind_draws_its_charts_offline_and_runs_no_foreign_script(fabricated):
    out, ids = fabricated
    with browsing() as page:
        problems, dialogs = [], []
        watch(page, problems)
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        drawn = {}
        for kind, name in page_kinds(ids).items():
            page.goto((out / name).as_uri(), wait_until="load")
            drawn[kind] = charts_drawn(page)
            assert all(marks > 0 for marks in drawn[kind]), f"{kind}: a chart without marks {drawn[kind]}"
            page.wait_for_timeout(300)  # let a framed notebook load (and any script in it try to run)
            page.screenshot(path=str(SHOTS / f"{kind}.png"), full_page=True)
        assert len(drawn["job"]) == 3 and len(drawn["sweep"]) == 3  # auc, log_loss against C; parallel view
        assert len(drawn["drift"]) == 3 and len(drawn["serving"]) == 3 and len(drawn["pipeline"]) == 1
        assert problems == [] and dialogs == []


def test_the_index_fits_1400_px_with_each_jobs_own_metrics(fabricated):
    out, ids = fabricated
    with browsing() as page:
        page.goto((out / "index.html").as_uri())
        for job in ("", "evaluate", "fit", "monitor", "prep"):
            page.select_option("#job", job)
            headers = page.eval_on_selector_all("#runs thead button", "bs => bs.map(b => b.textContent)")
            width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert width[0] <= width[1], f"job {job or 'all'}: {width} with columns {headers}"
            if job == "evaluate":
                assert len([h for h in headers if h.endswith(("_test", "_baseline"))]) == 8
                page.screenshot(path=str(SHOTS / "index-evaluate.png"), full_page=True)
            if job == "fit":
                assert "auc" in headers and "accuracy_test" not in headers and "drift_share" not in headers
        page.select_option("#job", "fit")
        page.click("#runs thead button[data-key='m:auc']")
        assert page.get_attribute("#runs thead th:has(button[data-key='m:auc'])", "aria-sort") == "descending"
        assert rows(page)[0] == ids["best"]
        assert page.inner_text(f"#runs tr[data-id='{ids['best']}'] a") == ids["best"][-6:]
        assert page.get_attribute(f"#runs tr[data-id='{ids['best']}'] a", "title") == ids["best"]


def test_sweep_page_lists_every_point_and_a_hovered_point_names_its_run(fabricated):
    out, ids = fabricated
    with browsing() as page:
        page.goto((out / f"sweeps/{ids['sweep']}.html").as_uri())
        charts_drawn(page)
        listed = page.eval_on_selector_all("#points tr td:nth-child(4) a", "as => as.map(a => a.title)")
        assert sorted(listed) == sorted(ids["sweep_runs"]) and listed[0] == ids["best"]
        ticks = page.eval_on_selector_all("div.vl >> nth=0", "els => Array.from(els[0].querySelectorAll("
                                          "'g.role-axis-label text')).map(t => t.textContent)")
        assert {"0.001", "0.01", "0.1", "1", "10"} <= set(ticks), ticks  # a log axis
        page.hover("div.vl >> nth=0 >> g.mark-symbol.role-mark path >> nth=0", force=True)
        page.wait_for_selector("#vg-tooltip-element.visible", timeout=5000)
        tip = page.inner_text("#vg-tooltip-element")
        assert any(run in tip for run in ids["sweep_runs"]), tip
        page.screenshot(path=str(SHOTS / "sweep-hover.png"))
        boxes = page.locator("input.pick")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.click("#compare")
        assert page.locator("#comparison tr.diff").count() >= 2  # C and the metrics differ
        assert "param penalty" in page.inner_text("#comparison") and "auc" in page.inner_text("#comparison")
        page.screenshot(path=str(SHOTS / "sweep-compare.png"), full_page=True)


def test_the_drift_page_names_the_alerting_monitor_run(fabricated):
    out, ids = fabricated
    with browsing() as page:
        page.goto((out / "drift.html").as_uri())
        assert page.get_attribute("#alerting a", "title") == ids["alerting"]
        assert page.locator("#monitors tr").count() == 1 + len(ids["monitors"])
        page.click("#alerting a")
        assert page.url.endswith(f"runs/{ids['alerting']}.html")
