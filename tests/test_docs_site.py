"""The documentation site (`python tools/docs.py --out DIR`) in a real browser, opened from file://."""

import fcntl
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
from test_report_browser import launch, watch

ROOT = Path(__file__).resolve().parent.parent


def page_of(notebook: Path) -> str:
    """The page nbdev names for a notebook: numeric prefix dropped, `.html` (`edtech/60_data.ipynb` -> `edtech/data.html`)."""
    relative = notebook.relative_to(ROOT / "nbs")
    return relative.with_name(re.sub(r"^\d+[a-zA-Z0-9]*_", "", relative.name.lower())).with_suffix(".html").as_posix()


def public_names() -> dict:
    """Each mlkit module (walking mlkit/) with its `__all__`."""
    names = {}
    for path in sorted((ROOT / "mlkit").rglob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        names[module.__name__] = list(getattr(module, "__all__", []))
    return names


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built by the documented command, once for all pytest-xdist workers (they share the parent folder)."""
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    out = shared / "docs-site"
    with open(shared / "docs-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "index.html").is_file():
            done = subprocess.run([sys.executable, "tools/docs.py", "--out", str(out)], cwd=ROOT, capture_output=True,
                                  text=True, timeout=600, check=False)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def local_target(url: str) -> tuple:
    """(file path, fragment) of a file:// URL."""
    address, fragment = urldefrag(url)
    return Path(unquote(urlsplit(address).path)), unquote(fragment)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page and the problems it reports (console errors, failed or external requests)."""
    page = browser.new_page()
    problems = []
    watch(page, problems)
    yield page, problems
    page.close()


def test_every_page_opens_offline_and_every_internal_link_resolves(site, page):
    page, problems = page
    notebooks = [path for path in (ROOT / "nbs").rglob("*.ipynb")  # nbdev leaves out names starting with _ or .
                 if not any(part.startswith(("_", ".")) for part in path.relative_to(ROOT / "nbs").parts)]
    expected = {page_of(path) for path in notebooks} | {"api.html", "index.html", "search.html"}
    missing = sorted(name for name in expected if not (site / name).is_file())
    assert missing == [], f"pages missing for notebooks: {missing}"
    ids, broken, fragments, titles = {}, [], [], []
    queue, seen = [site / "index.html"], set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        page.goto(path.as_uri(), wait_until="load")
        ids[path] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        if path.name != "search.html" and (count := page.locator("h1").count()) != 1:
            titles.append(f"{path.relative_to(site)}: {count} titles")
        links = page.eval_on_selector_all("a[href], link[href], script[src], img[src]",
                                          "els => els.map(e => e.href || e.src)")
        for url in links:
            if not url.startswith("file://"):
                continue
            target, fragment = local_target(url)
            if not target.exists():
                broken.append(f"{path.relative_to(site)} -> {url}")
            elif target.suffix == ".html":
                queue.append(target)
                fragments += [(path, target, fragment)] if fragment else []
    assert problems == []
    assert titles == [], "one title a page (a notebook without one would get two)"
    assert {name for name in expected if site / name not in seen} == set(), "pages no link reaches"
    broken += [f"{path.relative_to(site)} -> {target.relative_to(site)}#{fragment}"
               for path, target, fragment in fragments if fragment not in ids[target]]
    assert broken == []


def test_api_reference_lists_every_public_name(site, page):
    page, problems = page
    page.goto((site / "api.html").as_uri(), wait_until="load")
    listed = page.eval_on_selector_all("section section", """sections => Object.fromEntries(sections.map(s =>
        [s.querySelector('h2').textContent.replace(/[#¶]/g, '').trim(),
         [...s.querySelectorAll(':scope > ul > li')].map(li => li.querySelector('a').textContent.trim())]))""")
    expected = {module: names for module, names in public_names().items() if names}
    assert listed == expected
    assert problems == []


def test_search_finds_a_notebook_offline(site, page):
    page, problems = page
    page.goto((site / "search.html").as_uri() + "?q=fingerprint", wait_until="load")
    page.wait_for_selector("#search-results li a", timeout=20_000)
    hits = page.eval_on_selector_all("#search-results li a", "els => els.map(e => e.href)")
    assert any(hit.split("#")[0].endswith("/fingerprint.html") for hit in hits), hits
    assert problems == []


def test_a_failing_notebook_stops_the_build_with_its_name(tmp_path):
    spec = importlib.util.spec_from_file_location("docs", ROOT / "tools" / "docs.py")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    cells = [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# broken"},
             {"cell_type": "code", "id": "fails", "metadata": {}, "execution_count": None, "outputs": [],
              "source": "rows = 3\nundefined_name + rows"}]
    notebook = tmp_path / "07_broken.ipynb"
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    with pytest.raises(SystemExit, match=r"(?s)notebook .*07_broken\.ipynb failed.*NameError"):
        docs.execute_all({notebook: "broken"}, tmp_path / "src", 1, 60)


def test_docstring_and_modidx_links_point_into_the_site(site):
    from mlkit._modidx import d
    base = d["settings"]["doc_host"] + d["settings"]["doc_baseurl"] + "/"
    links = [url for symbols in d["syms"].values() for url, _ in symbols.values()]
    for path in (ROOT / "mlkit").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        links += [url.removeprefix(base) for url in re.findall(r"Docs: (https?://[^\s\"']+)", text)]
    assert len(links) > 100 and all(not link.startswith("http") for link in links), links[:5]
    ids = {}
    missing = []
    for link in links:
        name, _, fragment = link.partition("#")
        if not (site / name).is_file():
            missing.append(link)
        elif fragment:
            ids.setdefault(name, set(re.findall(r'id="([^"]+)"', (site / name).read_text(encoding="utf-8"))))
            missing += [link] if fragment not in ids[name] else []
    assert missing == []
