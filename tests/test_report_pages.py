"""What the report's pages say, read from the HTML of a fabricated archive: sweep points, the alerting monitor run,
the drift thresholds applied, values as tables, big CSVs previewed, and nothing from a notebook or an artifact that
could run as a script."""

import json
import re

import pytest
from report_archive import fabricate_archive

from mlkit.report import build_report, serving_summary
from mlkit.report_notebooks import sanitize_html


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-pages") / "runs"
    ids = fabricate_archive(root)
    build_report(root, workers=1)
    return root / ".report", ids


def text(site, name: str) -> str:
    return (site[0] / name).read_text(encoding="utf-8")


def test_the_sweep_page_lists_its_points_ranked_by_its_metric(site):
    _, ids = site
    page = text(site, f"sweeps/{ids['sweep']}.html")
    table = page[page.index('<table id="points">'):page.index("</table>", page.index('<table id="points">'))]
    ranked = re.findall(r'href="\.\./runs/([^"]+)\.html"', table)
    assert sorted(ranked) == sorted(ids["sweep_runs"]) and ranked[0] == ids["best"]
    assert "status: finished" in page and "ranked by auc (maximize)" in page
    index = text(site, "index.html")
    assert re.search(rf"{ids['sweep']}</a></td><td>fit</td>.*?<td class=\"num\">5</td>", index, re.S)


def test_the_drift_page_names_the_alerting_monitor_run_not_only_the_latest(site):
    _, ids = site
    page = text(site, "drift.html")
    box = page[page.index('id="alerting"'):page.index("</span>", page.index('id="alerting"'))]
    assert ids["alerting"] in box and ids["monitors"][-1] not in box
    assert page.index(f"Latest alerting monitoring run: <a class=\"rid\" href=\"runs/{ids['alerting']}.html\"") > 0
    assert all(f"runs/{run}.html" in page for run in ids["monitors"])  # every monitoring run, with its verdict
    assert page.count("ALERT drift") >= 2 and "drifted_features" not in page


def test_the_drift_page_shows_both_thresholds_a_feature_was_held_to(site):
    page = text(site, "drift.html")
    assert "Wasserstein/std &gt; 0.1; PSI &gt; 0.2" in page
    assert "Wasserstein/std 0.25; PSI 0.3100" in page
    assert "<th>psi_threshold</th><td class=\"num\">0.2</td>" in page


def test_values_are_tables_and_numbers_are_for_people(site):
    _, ids = site
    page = text(site, f"runs/{ids['sweep_runs'][0]}.html")
    assert "<th>fit.C</th>" in page and "<th>fit.converged</th>" in page and ">yes</td>" in page
    assert '<span title="0.19999999999999996">0.2</span>' in page  # log_loss, full value on hover
    assert "the first 10 of 500 rows" in page and "s11," not in page and ">s9<" in page
    assert f'class="upstream" href="{ids["prep"]}.html"' in page
    assert f'<a class="rid" href="../runs/{ids["prep"]}.html"' in page  # the upstream_run parameter, linked


def test_nothing_from_a_notebook_or_an_svg_artifact_can_run(site):
    out, ids = site
    notebook = text(site, f"notebooks/{ids['prep']}.html")
    body = notebook[notebook.index('<div class="notebook">'):]
    assert "<script" not in body and "onerror" not in body and "alert(" not in body
    assert "Content-Security-Policy" in notebook and "default-src 'none'" in notebook
    run = text(site, f"runs/{ids['prep']}.html")
    assert f'<iframe class="notebook" sandbox src="../notebooks/{ids["prep"]}.html"' in run
    assert 'alt="evil.svg"' in run and 'src="data:image/svg+xml;base64,' in run
    assert not list(out.rglob("*.svg"))  # never a document of its own in the site


def test_the_sanitizer_keeps_what_notebooks_show():
    kept = sanitize_html('<h1 id="Title">Title</h1><table class="dataframe"><tr><th>a</th></tr></table>'
                         '<img src="data:image/png;base64,AA" alt="plot"><a href="https://x.org">x</a>')
    assert '<h1 id="Title">' in kept and '<table class="dataframe">' in kept and 'src="data:image/png' in kept
    dropped = sanitize_html('<img src="x" onerror="alert(1)"><a href="data:text/html,hi">a</a><iframe></iframe>'
                            '<form><input></form><style>*{}</style>')
    assert "onerror" not in dropped and "data:text" not in dropped and "iframe" not in dropped
    assert "<form" not in dropped and "style" not in dropped and 'src="x"' not in dropped


def test_serving_is_summarized_per_minute():
    rows = [{"at": "2026-12-04T22:05:10+00:00", "status": 200, "latency_ms": 4, "model": "m", "model_version": 1},
            {"at": "2026-12-04T22:05:50+00:00", "status": 422, "latency_ms": 9, "model": "m", "model_version": 1},
            {"at": "2026-12-04T22:07:00+00:00", "status": 200, "latency_ms": 5, "model": "m", "model_version": 2}]
    summary = serving_summary(rows)
    assert summary["requests"] == 3 and summary["rejected"] == 1
    assert summary["minutes"][0] == {"at": "2026-12-04T22:05:00Z", "requests": 2, "rejected": 1, "version": "m v1",
                                     "p50": 4.0, "p90": 9.0, "p99": 9.0}
    assert [m["version"] for m in summary["minutes"]] == ["m v1", "m v2"]


def test_the_serving_page_marks_promotions_and_rollbacks(site):
    page = text(site, "serving.html")
    data = json.loads(re.search(r"window.MLKIT_DATA = (.*?);</script>", page).group(1))
    labels = [e["label"] for e in data["events"]]
    assert len(labels) == 3 and labels[-1].startswith("rollback: demo@champion v2 → v1")
    assert len(data["minutes"]) == 4
