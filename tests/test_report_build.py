"""Building the report of a larger fabricated archive: the worker pool, rebuilds that write only what changed,
notebook pages as nbconvert renders them, a damaged notebook."""

import json
import sys
from pathlib import Path

import pytest

from mlkit.report import build_report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_report import add_run, fabricate

RUNS = 60  # above the pool threshold (40 pages), small enough to stay quick


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("report-build")
    fabricate(work / "runs", RUNS)
    return work, build_report(work / "runs", workers=2)


def test_full_build_through_the_pool_writes_every_page(built):
    work, result = built
    site = work / "runs" / ".report"
    assert len([n for n in result.written if n.startswith("notebooks/")]) == RUNS
    assert len([n for n in result.written if n.startswith("runs/")]) == RUNS
    assert sorted(p.name for p in (site / "notebooks").iterdir()) == sorted(p.name for p in (site / "runs").iterdir())
    assert not list(site.rglob("*.tmp"))
    some = next(p for p in (site / "runs").iterdir())
    notebook = (site / "notebooks" / some.name).read_text()
    assert 'class="input_area"' in notebook and "log_metric" in notebook  # nbconvert's basic template
    assert f'<h1 id="Run-{some.stem}">Run {some.stem}' in notebook  # the markdown title, rendered
    assert ".notebook .input_area{" in notebook and "default-src 'none'" in notebook  # styled inline, no script


def test_rebuilds_write_only_what_changed(built):
    work, _ = built
    root = work / "runs"
    state = (root / ".report" / ".build-state.json").stat().st_mtime_ns
    assert build_report(root, workers=2).written == []
    assert (root / ".report" / ".build-state.json").stat().st_mtime_ns == state  # not even the state file
    add_run(work, root, "29990101-000000-000-ffffff")
    assert sorted(build_report(root, workers=2).written) == [
        "data/runs.js", "index.html", "jobs/ingest.html", "notebooks/29990101-000000-000-ffffff.html",
        "runs/29990101-000000-000-ffffff.html"]
    (root / ".report" / "runs" / "29990101-000000-000-ffffff.html").unlink()
    assert build_report(root, workers=2).written == ["runs/29990101-000000-000-ffffff.html"]


def test_a_damaged_notebook_gets_a_page_saying_so(built):
    work, _ = built
    root = work / "runs"
    folder = next((root / "train").iterdir())
    (folder / "notebook.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                                       "cells": [{"oops": 1}]}))
    result = build_report(root, workers=2)
    assert result.written == [f"notebooks/{folder.name}.html"]
    page = (root / ".report" / "notebooks" / f"{folder.name}.html").read_text()
    assert "nbconvert could not render this notebook" in page
