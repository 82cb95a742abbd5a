"""Build the documentation site from nbs/: `python tools/docs.py --out DIR`.

Every notebook under nbs/ becomes a page with its outputs, named as nbdev names it (`11_archive.ipynb` ->
`archive.html`, so the links in `mlkit/_modidx.py` and in the modules' docstrings resolve), with an anchor for each
name its exported cells define. The notebooks are executed the way `nbdev-test` executes them (execnb's in-process
shell, the same skipped cells, two notebooks at a time); a failing notebook stops the build with its name and its
traceback. `api.html` lists every public name of every module (signature, first docstring line, a link to its
notebook page); `index.ipynb`, the README's source, is the home page. Sphinx with MyST-NB and the furo theme renders
the site; its search works offline. Each page also gets a Markdown twin (`archive.html.md`), the address the modules'
docstrings give.
"""

import argparse
import ast
import functools
import importlib
import inspect
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
LIB = ROOT / "mlkit"
DIRECTIVE = re.compile(r"^\s*#\s*\|")

SKIPPED = ("```{note}\nThis notebook is not executed for the documentation (`skip_exec` in its front matter, as for "
           "`nbdev-test`): it is shown without outputs.\n```")

# The notebooks' code is up to 110 characters wide (ruff's line length): a wider column than furo's 46em.
CSS = ".content { width: 60em; max-width: 100%; }\n"

CONF = '''project = "mlkit"
copyright = "the mlkit developers"
html_title = "mlkit"
extensions = ["myst_nb"]
html_theme = "furo"
nb_execution_mode = "off"
myst_all_links_external = True
myst_enable_extensions = ["colon_fence"]
html_copy_source = False
html_show_sourcelink = False
html_show_search_summary = False  # the summaries are fetched, which file:// pages may not do
exclude_patterns = ["_build"]
html_static_path = ["_static"]
html_css_files = ["mlkit.css"]
suppress_warnings = ["misc.highlighting_failure", "mystnb.unknown_mime_type"]
'''


def notebooks() -> list:
    """Every notebook under nbs/ (recursive), in path order, as nbdev-test finds them."""
    from nbdev.doclinks import nbglob
    return sorted(Path(path) for path in nbglob(NBS, as_path=True))


def page_name(notebook: Path) -> str:
    """The page's path in the site, the way nbdev names it (`edtech/60_data.ipynb` -> `edtech/data`)."""
    from nbdev.config import nbpath2html
    return nbpath2html(notebook.relative_to(NBS)).with_suffix("").as_posix()


def defined_names(source: str) -> list:
    """The names one exported cell defines, as `_modidx.py` records them (methods as `Class.method`), plus constants."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        if isinstance(node, ast.ClassDef):
            names += [f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += assigned_names(targets)
    return names


def assigned_names(targets: list) -> list:
    """The plain names a statement assigns to, unpacking tuples (`A, B = 1, 2` assigns A and B)."""
    names = []
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            names += assigned_names(target.elts)
    return names


def only_imports(source: str) -> bool:
    """Whether a cell only imports (an exported imports cell, which nbdev's pages leave out too)."""
    try:
        return all(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.parse(source).body)
    except SyntaxError:
        return False


def page_cell(cell) -> list:
    """The cells the page shows for one executed cell: nbdev directives applied, anchors before exported code."""
    directives = dict(getattr(cell, "directives_", None) or {})
    if "hide" in directives or directives.get("include") == ["false"]:
        return []
    source = "".join(line for line in cell.source.splitlines(keepends=True) if not DIRECTIVE.match(line))
    if cell.cell_type == "raw":
        return []  # front matter (e.g. `skip_exec: true`)
    if cell.cell_type != "code":
        return [{"cell_type": cell.cell_type, "metadata": {}, "source": cell.source}]
    if not source.strip():
        return []
    tags = [tag for key, tag in (("echo", "remove-input"), ("output", "remove-output"))
            if directives.get(key) == ["false"]]
    shown = {"cell_type": "code", "metadata": {"tags": tags} if tags else {}, "source": source.rstrip("\n"),
             "outputs": [dict(output) for output in cell.get("outputs", [])],
             "execution_count": cell.get("execution_count")}
    exported = {"export", "exports", "exporti"} & directives.keys()
    if not exported:
        return [shown]
    if only_imports(source):
        return []
    anchors = "".join(f'<span id="{name.lower()}"></span>' for name in defined_names(source))
    return ([{"cell_type": "markdown", "metadata": {}, "source": anchors}] if anchors else []) + [shown]


def execute(notebook: Path, dest: Path, cell_timeout: int) -> tuple:
    """Run `notebook` as nbdev-test does and write its page notebook to `dest`: (seconds, error text or '')."""
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    from nbdev.test import nb_test_cells

    os.environ["IN_TEST"] = "1"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    start = time.time()
    nb = NBProcessor(notebook, rm_directives=False, process=True).nb
    run = {cell.idx_ for cell in nb_test_cells(notebook)}
    shell = CaptureShell(notebook)
    error = ""
    try:
        with working_directory(notebook.parent):
            shell.run_all(nb, exc_stop=True, preproc=lambda cell: cell.idx_ not in run, cell_timeout=cell_timeout)
    except BaseException:
        error = shell.prettytb(fname=notebook) or f"{notebook}: failed"
    if error:
        return time.time() - start, error
    cells = [shown for cell in nb.cells for shown in page_cell(cell)]
    if not (cells and cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# ")):
        cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": f"# {notebook.stem}"})
    if not run and any(cell["cell_type"] == "code" for cell in cells):
        cells.insert(1, {"cell_type": "markdown", "metadata": {}, "source": SKIPPED})
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"
    page = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(page, indent=1), encoding="utf-8")
    return time.time() - start, ""


def execute_all(pages: dict, source: Path, jobs: int, cell_timeout: int) -> dict:
    """Execute every notebook into `source`, `jobs` at a time; stop at the first failure, naming the notebook."""
    seconds = {}
    sys.path.insert(0, str(Path(__file__).parent))
    worker = importlib.import_module("docs").execute  # by module name: pickling `__main__.execute` breaks once nbdev is imported
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(worker, notebook, source / f"{page}.ipynb", cell_timeout): notebook
                   for notebook, page in pages.items()}
        for future in as_completed(futures):
            notebook = futures[future]
            took, error = future.result()
            if error:
                for other in futures:
                    other.cancel()
                name = notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook
                raise SystemExit(f"docs: notebook {name} failed:\n{error}")
            seconds[notebook] = took
    return seconds


def modules() -> list:
    """Every module of the mlkit package (walking mlkit/), by dotted name."""
    names = []
    for path in sorted(LIB.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_page(module) -> str:
    """The page of the notebook a module is exported from (its `File to edit:` line)."""
    found = re.search(r"File to edit: \.\./(?:\.\./)*nbs/(\S+?\.ipynb)", Path(module.__file__).read_text(encoding="utf-8"))
    return page_name(NBS / found.group(1)) if found else ""


def signature(obj) -> str:
    """What follows the name: `(params) -> result` for callables (a class's bases if it has no signature), `= value`."""
    if inspect.isclass(obj) or callable(obj):
        try:
            return str(inspect.signature(obj))
        except (TypeError, ValueError):
            bases = obj.__bases__ if inspect.isclass(obj) else ()
            return f"({', '.join(base.__name__ for base in bases)})" if bases else "(...)"
    value = repr(obj)
    return f" = {value if len(value) <= 70 else value[:67] + '...'}"


def summary(obj) -> str:
    """The first line of an object's own docstring."""
    doc = inspect.getdoc(obj) if inspect.isclass(obj) or inspect.isroutine(obj) else ""
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


@functools.cache
def module_defines(module_name: str) -> frozenset:
    """The names a module's own source defines at top level (functions, classes, assigned constants)."""
    source = Path(importlib.import_module(module_name).__file__).read_text(encoding="utf-8")
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(assigned_names(targets))
    return frozenset(names)


def constant_home(module_name: str, name: str):
    """The mlkit module that defines constant `name` re-exported by `module_name` (None when it defines it itself)."""
    if name in module_defines(module_name):
        return None
    homes = [m for m in sorted(sys.modules) if m.startswith("mlkit") and m != module_name
             and getattr(sys.modules[m], "__file__", None) and name in module_defines(m)]
    return sys.modules[homes[0]] if homes else None


def api_rows(module_name: str) -> list:
    """(name, signature, summary, page, anchor) for each name in a module's `__all__`."""
    module = importlib.import_module(module_name)
    rows = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            home = sys.modules.get(getattr(obj, "__module__", "") or "")
        else:
            home = constant_home(module_name, name)
        page = module_page(home) if home is not None and home.__name__.startswith("mlkit") else module_page(module)
        anchor = (getattr(obj, "__name__", name) if home is not None else name).lower()
        rows.append((name, signature(obj), summary(obj), page, anchor))
    return rows


def code(text: str) -> str:
    """`text` as one Markdown code span, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def prose(text: str) -> str:
    """A docstring line as Markdown: `<` outside code spans escaped, so `<name>` is not read as HTML."""
    parts = text.split("`")
    return "`".join(part if number % 2 else part.replace("<", "&lt;") for number, part in enumerate(parts))


def api_page(names: list) -> str:
    """The API reference in MyST Markdown: one section per module, one item per public name."""
    intro = ("Every public name of every mlkit module (its `__all__`), with its signature, the first line of its "
             "docstring, and the notebook that defines, explains and tests it.")
    lines = ["# API reference", "", intro, ""]
    for module_name in names:
        rows = api_rows(module_name)
        if not rows:
            continue
        module = sys.modules[module_name]
        doc = (module.__doc__ or "").strip().splitlines()
        page = module_page(module)
        lines += [f"## {module_name}", "", f"{doc[0] if doc else ''} Notebook: [{page}]({page}.html).", ""]
        for name, sig, text, home, anchor in rows:
            kind = "*class* " if inspect.isclass(getattr(module, name)) else ""
            lines.append(f"- {kind}[`{name}`]({home}.html#{anchor}){code(sig)}"
                         + (f"  \n  {prose(text)}" if text else ""))
        lines.append("")
    return "\n".join(lines)


def toctree(pages: list) -> str:
    """Hidden tables of contents for the home page: the library notebooks, then each folder of nbs/, then the API."""
    groups = {}
    for page in pages:
        if page != "index":
            groups.setdefault(page.rpartition("/")[0], []).append(page)
    blocks = []
    for folder, members in sorted(groups.items(), key=lambda item: (item[0] != "", item[0])):
        caption = f"nbs/{folder}" if folder else "Library"
        blocks.append("```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(members) + "\n```")
    blocks.append("```{toctree}\n:hidden:\n:caption: Reference\n\napi\n```")
    return "\n\n".join(blocks)


def markdown_twin(page: Path) -> str:
    """A page notebook as plain Markdown: its prose, its code fenced, its text outputs fenced."""
    parts = []
    for cell in json.loads(page.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown" and not cell["source"].startswith("<span id="):
            parts.append(cell["source"])
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{cell['source']}\n```")
            for output in cell.get("outputs", []):
                text = output.get("text") or output.get("data", {}).get("text/plain")
                if text:
                    parts.append("```\n" + ("".join(text) if isinstance(text, list) else text).rstrip() + "\n```")
    return "\n\n".join(parts) + "\n"


def build(out: Path, jobs: int) -> None:
    """Execute the notebooks, write the sources, run Sphinx into `out`, add the Markdown twins."""
    from nbdev.config import get_config
    from sphinx.cmd.build import build_main

    cell_timeout = int(get_config().get("cell_timeout") or 600)
    pages = {notebook: page_name(notebook) for notebook in notebooks()}
    with tempfile.TemporaryDirectory(prefix="mlkit-docs-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        start = time.time()
        seconds = execute_all(pages, source, jobs, cell_timeout)
        slowest = ", ".join(f"{nb.name} {took:.0f}s" for nb, took in sorted(seconds.items(), key=lambda i: -i[1])[:3])
        print(f"docs: executed {len(seconds)} notebooks in {time.time() - start:.0f}s (slowest: {slowest})")
        home = source / "index.ipynb"
        notebook = json.loads(home.read_text(encoding="utf-8"))
        notebook["cells"].append({"cell_type": "markdown", "id": "toctree", "metadata": {}, "source": toctree(list(pages.values()))})
        home.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        (source / "api.md").write_text(api_page(modules()), encoding="utf-8")
        (source / "conf.py").write_text(CONF, encoding="utf-8")
        (source / "_static").mkdir()
        (source / "_static" / "mlkit.css").write_text(CSS, encoding="utf-8")
        start = time.time()
        html = Path(tmp) / "html"  # MyST-NB writes into the output folder's parent: keep that in the temporary folder
        status = build_main(["-b", "html", "-q", "-d", str(Path(tmp) / "doctrees"), str(source), str(html)])
        if status:
            raise SystemExit(f"docs: sphinx failed (status {status})")
        if out.exists():
            out.rmdir()  # empty: main() refuses a folder with anything but an earlier build, and removes that
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(html, out)
        for page in pages.values():
            (out / f"{page}.html.md").write_text(markdown_twin(source / f"{page}.ipynb"), encoding="utf-8")
        print(f"docs: rendered {len(pages) + 1} pages in {time.time() - start:.0f}s into {out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the site into (replaced)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at a time (default 2)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        if not (out / ".buildinfo").exists():
            parser.error(f"{out} is not empty and holds no earlier build: refusing to replace it")
        shutil.rmtree(out)
    os.chdir(ROOT)
    build(out, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
