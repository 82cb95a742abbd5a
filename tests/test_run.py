"""`mlkit run`: parameters, archive contents, failures and exit codes, with real kernels."""

import json

import nbformat
import yaml

MANIFEST_KEYS = {"id", "job", "status", "started_at", "finished_at", "duration_s", "params", "notebook", "code",
                 "environment", "inputs", "artifacts", "metrics", "error", "retries", "kernel"}

RECORDING = """
import mlkit, pandas as pd, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = mlkit.log_input("data.csv")
mlkit.log_metric("rate", rate * 2)
mlkit.log_value("labels", {"label": label, "count": count})
mlkit.log_table("table", pd.DataFrame({"x": [1, 2]}))
fig, ax = plt.subplots(); ax.plot([1, 2]); mlkit.log_figure("plot", fig)
open("extra.txt", "w").write("hello"); mlkit.log_artifact("extra.txt")
"""


def test_run_archives_everything(project):
    project.job("rec", "rate: float = 0.5\nlabel = 'x'\ncount = 1", RECORDING)
    (project.root / "jobs" / "data.csv").write_text("a,b\n1,2\n")
    manifest = project.run_json("rec", "-p", "label", "007", "-p", "rate", "2", check=0)
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["status"] == "succeeded" and manifest["error"] is None and manifest["retries"] == 0
    assert manifest["params"] == {"rate": 2.0, "label": "007", "count": 1}
    assert manifest["metrics"] == {"rate": 4.0}
    assert set(manifest["code"]) >= {"mlkit_version", "library_sha256", "git_commit", "git_dirty"}
    assert "papermill" in manifest["environment"]["packages"] and manifest["environment"]["python"]
    assert [i["bytes"] for i in manifest["inputs"]] == [8]
    assert {a["path"] for a in manifest["artifacts"]} == {"artifacts/table.csv", "artifacts/plot.png",
                                                          "artifacts/extra.txt"}
    folder = project.run_folders("rec")[0]
    assert folder.name == manifest["id"]
    assert yaml.safe_load((folder / "params.yaml").read_text()) == manifest["params"]
    assert json.loads((folder / "values.json").read_text()) == {"labels": {"label": "007", "count": 1}}
    executed = nbformat.read(folder / "notebook.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "label = \"007\"" in injected[0].source


def test_parameter_sources_and_precedence(project):
    project.job("p", "a: int = 1\nb = 'x'\nc: list[int] = []\nd: str | None = None",
                "import mlkit; mlkit.log_value('seen', {'a': a, 'b': b, 'c': c, 'd': d})")
    (project.root / "params" / "p.yaml").write_text("a: 10\nb: from-default-file\n")
    (project.root / "one.yaml").write_text("a: 20\nc: [1, 2]\n")
    (project.root / "two.yaml").write_text("a: 30\n")
    manifest = project.run_json("p", "-f", "one.yaml", "-f", "two.yaml", "-y", "b: from-y", "-p", "d", "None",
                                check=0)
    assert manifest["params"] == {"a": 30, "b": "from-y", "c": [1, 2], "d": None}
    assert manifest["param_files"] == [str(project.root / "params" / "p.yaml"), "one.yaml", "two.yaml"]
    manifest = project.run_json("p", "-f", "one.yaml", "-p", "a", "5", "--no-default-params", check=0)
    assert manifest["params"]["a"] == 5 and manifest["params"]["b"] == "x"


def _assert_nothing_archived(project):
    assert project.run_folders() == []
    staging = project.archive / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_unknown_parameter_is_a_usage_error(project):
    project.job("p", "learning_rate = 0.1\nepochs = 3", "pass")
    result = project.mlkit("run", "p", "-p", "learning_rat", "0.2", check=2)
    assert "unknown parameter 'learning_rat'" in result.stderr
    assert "did you mean 'learning_rate'" in result.stderr and "epochs" in result.stderr
    _assert_nothing_archived(project)


def test_type_errors_name_parameter_type_and_value(project):
    project.job("p", "epochs = 3\nflag = True\nmode: Literal['a', 'b'] = 'a'", "pass")
    result = project.mlkit("run", "p", "-p", "epochs", "3.5", "-p", "flag", "maybe", "-p", "mode", "c", check=2)
    for expected in ("'epochs'", "expected int", "'3.5'", "'flag'", "expected bool", "'mode'", "'c'"):
        assert expected in result.stderr, (expected, result.stderr)
    (project.root / "bad.yaml").write_text("epochs: [1]\n")
    result = project.mlkit("run", "p", "-f", "bad.yaml", check=2)
    assert "bad.yaml" in result.stderr and "expected int" in result.stderr
    result = project.mlkit("run", "p", "-f", "missing.yaml", check=2)
    assert "missing.yaml" in result.stderr
    _assert_nothing_archived(project)


def test_notebook_without_parameters_cell(project):
    project.job("plain", None, "x = 1")
    assert project.run_json("plain", check=0)["status"] == "succeeded"
    folder = project.run_folders("plain")[0]
    assert json.loads((folder / "metrics.json").read_text()) == {} and (folder / "artifacts").is_dir()
    result = project.mlkit("run", "plain", "-p", "x", "2", check=2)
    assert "no cell tagged 'parameters'" in result.stderr


def test_invalid_parameters_cell_names_the_line(project):
    project.job("broken", "a = 1\nb = (2,\n", "pass")
    result = project.mlkit("run", "broken", check=2)
    assert "not valid Python" in result.stderr and "line 2" in result.stderr
    _assert_nothing_archived(project)


def test_failure_exit_code_line_and_banner(project):
    project.job("fails", "x = 1", "y = 2", "raise ValueError(f'bad value {x}')", "never = True")
    result = project.mlkit("run", "fails", check=1)
    lines = [line for line in result.stderr.splitlines() if "failed" in line]
    assert len(lines) == 1 and "ValueError: bad value 1" in lines[0]
    assert "in code cell 3 (raise ValueError(f'bad value {x}'))" in lines[0]  # code cells counted as a reader does
    folder = project.run_folders("fails")[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"]["ename"] == "ValueError" and manifest["error"]["cell"] == 2
    executed = nbformat.read(folder / "notebook.ipynb", as_version=4)
    banners = [c for c in executed.cells if "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    assert len(banners) == 2


def test_unknown_job_lists_jobs(project):
    project.job("train", None, "pass")
    result = project.mlkit("run", "trian", check=2)
    assert "train" in result.stderr and "trian" in result.stderr
    result = project.mlkit("run", "nowhere/x.ipynb", check=2)
    assert "no notebook" in result.stderr


def test_job_resolved_from_a_subfolder_and_runs_in_notebook_folder(project):
    project.job("where", None, "import os, mlkit; mlkit.log_value('cwd', os.getcwd())")
    (project.root / "deep" / "er").mkdir(parents=True)
    manifest = project.run_json("where", cwd=project.root / "deep" / "er", check=0)
    folder = project.run_folders("where")[0]
    assert json.loads((folder / "values.json").read_text())["cwd"] == str(project.root / "jobs")
    assert manifest["notebook"]["path"] == "jobs/where.ipynb"


def test_foreign_notebook_papermill_style(project):
    """A notebook written elsewhere: no kernelspec, old minor format, no cell ids, magics, display outputs."""
    nb = {"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": ["%config InlineBackend.figure_format = 'png'\n", "n = 3"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["from IPython.display import display, HTML\n", "display(HTML('<b>%d</b>' % n))\n", "n * 2"]},
    ]}
    path = project.root / "elsewhere.ipynb"
    path.write_text(json.dumps(nb))
    manifest = project.run_json(path, "-p", "n", "4", check=0)
    executed = nbformat.read(project.run_folders("elsewhere")[0] / "notebook.ipynb", as_version=4)
    assert manifest["status"] == "succeeded"
    assert executed.cells[-1].outputs[-1]["data"]["text/plain"] == "8"


def test_python_api(project, monkeypatch):
    import mlkit
    project.job("api", "n: int = 1", "import mlkit; mlkit.log_metric('n', n)")
    monkeypatch.chdir(project.root)
    done = mlkit.run("api", {"n": 4})
    assert done.status == "succeeded" and done.metrics == {"n": 4.0} and done.params == {"n": 4}
    assert done.path.parent == project.archive / "api"
    assert [r.id for r in mlkit.list_runs(job="api")] == [done.id]
    assert mlkit.get_run(done.id[:-3]).manifest["id"] == done.id
    try:
        mlkit.run("api", {"n": "four"})
        raise AssertionError("a str for an int parameter must be refused")
    except mlkit.ParameterError as error:
        assert "expected int" in str(error)


def test_jobs_see_the_archive_their_run_goes_to(project, tmp_path):
    """Inside a job, mlkit.get_run / list_runs use the archive the runner writes to (--archive), not the default."""
    project.job("first", None, "x = 1")
    project.job("second", "target = ''", "import mlkit; mlkit.log_value('found', mlkit.get_run(target).job)")
    elsewhere = tmp_path / "elsewhere"
    first = project.run_json("first", "--archive", elsewhere, check=0)
    second = project.run_json("second", "-p", "target", first["id"], "--archive", elsewhere, check=0)
    folder = elsewhere / "second" / second["id"]
    assert json.loads((folder / "values.json").read_text()) == {"found": "first"}
