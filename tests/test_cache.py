"""The run cache: hits, every kind of miss, --force, failures never hit, opt-out."""

import json
import shutil

import nbformat
from conftest import REPO

READS_INPUT = "import mlkit\npath = mlkit.log_input(data)\nmlkit.log_metric('size', len(open(path).read()))"


def _runs(project, job):
    return json.loads(project.mlkit("runs", "list", "--job", job, "--json", check=0).stdout)


def test_hit_reports_the_archived_run_without_a_kernel(project):
    project.job("j", "x: int = 1", "import mlkit; mlkit.log_metric('x', x)")
    first = project.run_json("j", check=0)
    assert first["cached"] is False and first["output_sha256"] and first["cache_key"]
    second = project.run_json("j", check=0)
    assert second["cached"] is True and second["id"] == first["id"]
    plain = project.mlkit("run", "j", check=0)
    assert "(cached)" in plain.stdout and "cache hit" in plain.stderr
    assert len(_runs(project, "j")) == 1


def test_misses_on_parameter_and_notebook_change(project):
    path = project.job("j", "x: int = 1", "y = x")
    first = project.run_json("j", check=0)["id"]
    assert project.run_json("j", "-p", "x", 2, check=0)["cached"] is False
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "y = x + 1"
    nbformat.write(nb, path)
    changed = project.run_json("j", check=0)
    assert changed["cached"] is False and changed["id"] != first
    nb.cells[1].metadata["collapsed"] = True  # metadata and outputs are not part of the key
    nbformat.write(nb, path)
    assert project.run_json("j", check=0)["id"] == changed["id"]


def test_miss_when_a_declared_input_changes(project):
    data = project.root / "data.txt"
    data.write_text("abc")
    project.job("j", f"data = {str(data)!r}", READS_INPUT)
    first = project.run_json("j", check=0)
    assert first["inputs"][0]["path"] == str(data) and project.run_json("j", check=0)["cached"] is True
    data.write_text("abcd")
    second = project.run_json("j", check=0)
    assert second["cached"] is False and second["metrics"] == {"size": 4.0}
    data.write_text("abc")  # back to the first content: the first run is valid again
    assert project.run_json("j", check=0)["id"] == first["id"]
    data.unlink()
    assert project.mlkit("run", "j", check=1).returncode == 1  # a missing input is no hit: the job runs and fails


def test_miss_on_library_change(project, tmp_path):
    project.job("j", None, "x = 1")
    first = project.run_json("j", check=0)
    copy = tmp_path / "lib" / "mlkit"
    shutil.copytree(REPO / "mlkit", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "errors.py", "a") as handle:
        handle.write("\n# a change to the library\n")
    changed = project.run_json("j", env={"PYTHONPATH": str(tmp_path / "lib")}, check=0)
    assert changed["cached"] is False
    assert changed["code"]["library_sha256"] != first["code"]["library_sha256"]


def test_force_and_failures(project):
    project.job("j", None, "x = 1")
    first = project.run_json("j", check=0)["id"]
    assert project.run_json("j", "--force", check=0)["id"] != first
    project.job("bad", None, "raise ValueError('no')")
    project.mlkit("run", "bad", check=1)
    project.mlkit("run", "bad", check=1)
    assert [r["status"] for r in _runs(project, "bad")] == ["failed", "failed"]


def test_job_and_project_opt_out(project):
    path = project.job("j", None, "x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["mlkit"] = {"cache": False}
    nbformat.write(nb, path)
    project.mlkit("run", "j", check=0)
    project.mlkit("run", "j", check=0)
    assert len(_runs(project, "j")) == 2
    project.job("k", None, "x = 1")
    with open(project.root / "pyproject.toml", "a") as handle:
        handle.write("cache = false\n")
    project.mlkit("run", "k", check=0)
    assert project.run_json("k", check=0)["cached"] is False


def test_deterministic_job_gives_the_same_output_hash(project):
    project.job("d", "n: int = 3", "import pandas as pd\nframe = pd.DataFrame({'a': range(n)})\nframe",
                "print(object())\nprint('done')", "class Box: pass\nBox()")
    first = project.run_json("d", check=0)
    second = project.run_json("d", "--force", check=0)
    assert first["id"] != second["id"] and first["output_sha256"] == second["output_sha256"]


def test_python_api_force(project, monkeypatch):
    import mlkit
    project.job("j", None, "x = 1")
    monkeypatch.chdir(project.root)
    first = mlkit.run("j")
    assert mlkit.run("j").cached and mlkit.run("j").id == first.id
    forced = mlkit.run("j", force=True)
    assert not forced.cached and forced.id != first.id
    assert mlkit.run("j").id == forced.id, "a hit is the newest matching run"


def test_a_run_that_resolved_latest_is_never_a_cache_hit(project):
    """`mlkit.upstream("latest", ...)` changes meaning with every new run, so such a run cannot be reused."""
    project.job("make", "n: int = 1", "import mlkit; mlkit.log_metric('n', n)")
    project.job("use", None, "import mlkit; source = mlkit.upstream('latest', job='make')\n"
                "mlkit.log_value('source', source.id)")
    project.run_json("make", check=0)
    first = project.run_json("use", check=0)
    assert first["cache_key"] is None and first["uncacheable"] == ["resolved 'latest' make run"]
    newer = project.run_json("make", "-p", "n", 2, check=0)
    second = project.run_json("use", check=0)
    assert second["cached"] is False and second["upstream"] == [newer["id"]]
