"""papermill's own test notebooks (tests/notebooks/papermill/, BSD-3) through `mlkit run`: they behave as under
papermill, except where mlkit is deliberately stricter, and then with a one-line error."""

import json
import shutil
from pathlib import Path

import pytest

PAPERMILL_NOTEBOOKS = Path(__file__).parent / "notebooks" / "papermill"


@pytest.fixture
def papermill_project(project):
    for notebook in PAPERMILL_NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(notebook, project.root / "jobs" / notebook.name)
    return project


def executed(project, job) -> dict:
    """The executed notebook of `job`'s only run."""
    [folder] = project.run_folders(job)
    return json.loads((folder / "notebook.ipynb").read_text())


def test_simple_execute_streams_its_output_with_log_output_and_a_progress_bar(papermill_project):
    result = papermill_project.mlkit("run", "simple_execute", "-p", "msg", "hello", "--log-output", "--progress-bar",
                                     check=0)
    assert "[cell 2] hello" in result.stdout  # papermill --log-output shows the cell's print as it runs
    assert "Executing DESC: 100%" in result.stderr  # papermill's bar, with the cell's papermill_description
    cells = executed(papermill_project, "simple_execute")["cells"]
    assert ["".join(o["text"]) for c in cells if c["cell_type"] == "code" for o in c["outputs"]] == ["hello\n"]


def test_broken1_names_the_code_cell_and_stops_there(papermill_project):
    result = papermill_project.mlkit("run", "broken1", check=1)
    assert "failed in code cell 2 (assert False): AssertionError: " in result.stderr
    code = [c for c in executed(papermill_project, "broken1")["cells"] if c["cell_type"] == "code"]
    assert code[1]["outputs"][0]["ename"] == "AssertionError" and code[2]["execution_count"] is None


def test_sysexit1_fails_and_stops(papermill_project):
    result = papermill_project.mlkit("run", "sysexit1", check=1)
    assert "failed in code cell 2 (sys.exit(1)): SystemExit: 1" in result.stderr
    code = [c for c in executed(papermill_project, "sysexit1")["cells"] if c["cell_type"] == "code"]
    assert code[2]["outputs"] == [] and code[2]["execution_count"] is None


def test_line_magic_error_gives_the_errors_name_and_text(papermill_project):
    result = papermill_project.mlkit("run", "line_magic_error", check=1)
    assert ("failed in code cell 1 (%undefined-line-magic): UsageError: Line magic function `%undefined-line-magic` "
            "not found.") in result.stderr
    [folder] = papermill_project.run_folders("line_magic_error")
    error = json.loads((folder / "manifest.json").read_text())["error"]
    assert (error["ename"], error["code_cell"]) == ("UsageError", 1)


def test_complex_parameters_is_refused_in_one_line(papermill_project):
    # papermill starts a kernel and fails on the cell's `= 2`; mlkit reads the parameters cell first and refuses it.
    result = papermill_project.mlkit("run", "complex_parameters", check=2)
    assert result.stderr.splitlines() == [("mlkit: error: complex_parameters.ipynb: the parameters cell (cell 1) is "
                                           "not valid Python: line 14: invalid syntax: = 2")]
    assert papermill_project.run_folders() == []


def test_params_lists_what_papermill_help_notebook_lists(papermill_project):
    listed = papermill_project.mlkit("params", "simple_execute", "--json", check=0)
    assert json.loads(listed.stdout) == [{"name": "msg", "type": "any", "default": "None", "required": False,
                                          "help": ""}]
    cell = json.loads((PAPERMILL_NOTEBOOKS / "complex_parameters.ipynb").read_text())
    source = "".join(cell["cells"][0]["source"]).replace("\n= 2", "")  # papermill skips the broken line; mlkit refuses it
    cell["cells"][0]["source"] = source
    (papermill_project.root / "jobs" / "fixed.ipynb").write_text(json.dumps(cell))
    rows = {r["name"]: r for r in json.loads(papermill_project.mlkit("params", "fixed", "--json", check=0).stdout)}
    assert (rows["a"]["type"], rows["a"]["default"], rows["a"]["help"]) == ("float", "2.25", "Variable a")
    assert rows["b"]["help"] == "Nice list" and rows["c"]["help"] == "Interesting c variable"
    refused = papermill_project.mlkit("params", "complex_parameters", check=2)
    assert len(refused.stderr.splitlines()) == 1 and "invalid syntax: = 2" in refused.stderr
