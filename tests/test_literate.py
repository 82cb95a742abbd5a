"""The literate workflow: nbdev-clean keeps papermill's tag, README is in step, quick start has two commands."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, make_notebook

BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tools"))
import make_readme


def test_nbdev_clean_keeps_the_parameters_tag(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    notebook = make_notebook(tmp_path / "nbs" / "job.ipynb", "x = 1", "print(x)")
    data = json.loads(notebook.read_text())
    data["cells"][0]["metadata"]["collapsed"] = True
    data["cells"][1]["metadata"]["scrolled"] = True
    notebook.write_text(json.dumps(data))
    subprocess.run([BIN / "nbdev-clean"], cwd=tmp_path, check=True, capture_output=True)
    cleaned = json.loads(notebook.read_text())
    assert cleaned["cells"][0]["metadata"] == {"tags": ["parameters"]}
    assert cleaned["cells"][1]["metadata"] == {}


def test_nbdev_clean_keeps_job_settings_in_notebook_metadata(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    notebook = make_notebook(tmp_path / "nbs" / "job.ipynb", "x = 1")
    data = json.loads(notebook.read_text())
    data["metadata"].update({"mlkit": {"cache": False}, "widgets": {}, "toc": {"x": 1}})
    notebook.write_text(json.dumps(data))
    subprocess.run([BIN / "nbdev-clean"], cwd=tmp_path, check=True, capture_output=True)
    cleaned = json.loads(notebook.read_text())["metadata"]
    assert cleaned["mlkit"] == {"cache": False} and "toc" not in cleaned
    promote = json.loads((REPO / "nbs" / "jobs" / "promote.ipynb").read_text())
    assert promote["metadata"]["mlkit"] == {"cache": False}


def test_repository_job_notebooks_keep_their_parameters_tag():
    for notebook in sorted((REPO / "nbs" / "jobs").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        assert any("parameters" in c["metadata"].get("tags", []) for c in cells), notebook.name


def test_readme_is_in_step_with_index_notebook():
    assert (REPO / "README.md").read_text() == make_readme.render()


def test_quick_start_is_two_commands_under_the_heading():
    text = (REPO / "README.md").read_text()
    after = text.split("## Quick start\n", 1)[1].lstrip("\n")
    assert after.startswith("```bash\n"), "the quick start block must come right under the heading"
    commands = make_readme.quick_start_commands(text)
    assert len(commands) == 2
    assert commands[0].endswith("mlkit pipeline run") and "pytest" in commands[1] and "nbdev-test" in commands[1]
    for command in commands:
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install")
