"""`mlkit reproduce`, `mlkit runs diff` and `mlkit runs compare`, and `mlkit.runs_frame`."""

import json

import nbformat


def test_reproduce_deterministic_job_passes(project):
    project.job("det", "n: int = 50", "import random, mlkit\nrng = random.Random(n)\n"
                "value = sum(rng.random() for _ in range(n))\nmlkit.log_metric('sum', value)\nprint(value)")
    original = project.run_json("det", check=0)
    result = project.mlkit("reproduce", original["id"][:-3], check=0)
    assert "reproduced:" in result.stdout and "differs" not in result.stdout
    report = json.loads(project.mlkit("reproduce", original["id"], "--json", check=0).stdout)
    assert report["matched"] is True and report["original"] == original["id"]
    new = json.loads(project.mlkit("runs", "show", report["reproduced"], "--json", check=0).stdout)
    assert new["reproduces"] == original["id"] and new["id"] != original["id"]


def test_reproduce_nondeterministic_job_fails_with_a_readable_diff(project):
    project.job("rnd", None, "import random, mlkit\n_ = mlkit.log_metric('draw', random.random())")
    original = project.run_json("rnd", check=0)
    result = project.mlkit("reproduce", original["id"], check=1)
    assert "NOT reproduced" in result.stdout
    draw_line = next(line for line in result.stdout.splitlines() if line.startswith("metric") and "draw" in line)
    assert draw_line.endswith("differs")
    assert project.mlkit("reproduce", original["id"], "--atol", "1", check=0).returncode == 0


def test_reproduce_reports_missing_and_changed_inputs(project):
    # Without snapshots (project opt-out), the job reads what is there now (tests/test_snapshots.py: with them).
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "snapshots = false\n")
    data = project.root / "data.csv"
    data.write_text("1\n2\n")
    project.job("reads", f"path = {str(data)!r}",
                "import mlkit\nrows = open(mlkit.log_input(path)).read().split()\nmlkit.log_metric('rows', len(rows))")
    original = project.run_json("reads", check=0)
    data.write_text("1\n2\n3\n")
    changed = project.mlkit("reproduce", original["id"], check=1).stdout
    assert any(line.startswith("input") and line.endswith("changed (no snapshot)") for line in changed.splitlines())
    data.unlink()
    missing = project.mlkit("reproduce", original["id"], check=1)
    assert any(line.startswith("input") and line.endswith("missing (no snapshot)") for line in missing.stdout.splitlines())
    assert "Traceback" not in missing.stderr


def test_reproduce_current_uses_the_working_copy(project):
    path = project.job("cur", None, "import mlkit; mlkit.log_metric('v', 1)")
    original = project.run_json("cur", check=0)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "import mlkit; mlkit.log_metric('v', 2)"
    nbformat.write(nb, path)
    assert project.mlkit("reproduce", original["id"], check=0).returncode == 0
    result = project.mlkit("reproduce", original["id"], "--current", check=1)
    assert "notebook" in result.stdout


def test_reproduce_bad_reference(project):
    assert "no run" in project.mlkit("reproduce", "19990101", check=2).stderr


def test_diff_and_compare(project, monkeypatch):
    project.job("t", "lr: float = 0.1\nseed: int = 0\ndepth: int = 3",
                "import mlkit\nmlkit.log_metric('auc', 0.5 + lr)\nmlkit.log_metric('loss', 1 - lr)")
    runs = [project.run_json("t", "-p", "lr", lr, check=0) for lr in (0.1, 0.3, 0.2)]
    diff = project.mlkit("runs", "diff", runs[0]["id"], runs[1]["id"], check=0).stdout
    assert "lr" in diff and "0.2" in diff and "seed" not in diff and "inputs: no differences" in diff
    data = json.loads(project.mlkit("runs", "diff", runs[0]["id"], runs[1]["id"], "--json", check=0).stdout)
    assert data["params"] == [["lr", 0.1, 0.3]]
    assert [round(row[3], 6) for row in data["metrics"]] == [0.2, -0.2]
    table = project.mlkit("runs", "compare", "--job", "t", "--metric", "auc", check=0).stdout.splitlines()
    assert table[0].split() == ["id", "status", "lr", "auc", "loss"]
    assert [line.split()[0] for line in table[2:]] == [runs[1]["id"], runs[2]["id"], runs[0]["id"]]
    ascending = json.loads(project.mlkit("runs", "compare", "--metric", "loss", "--ascending", "--json",
                                         check=0).stdout)
    assert [row["id"] for row in ascending] == [runs[1]["id"], runs[2]["id"], runs[0]["id"]]
    import mlkit
    monkeypatch.chdir(project.root)
    frame = mlkit.runs_frame(job="t")
    assert list(frame.index) == [r["id"] for r in runs]
    assert {"params.lr", "metrics.auc", "status"} <= set(frame.columns)
