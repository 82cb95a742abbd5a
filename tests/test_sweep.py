"""mlkit sweep: points checked first, run side by side, failures recorded, cache reused, ranked, listed."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import MLKIT

from mlkit.archive import Archive

QUAD_PARAMS = "x: float = 0.0\nscale: int = 1"
QUAD_BODY = ("import os, mlkit\n"
             "mlkit.log_value('cwd', os.getcwd())\n"
             "assert x != 99, 'x = 99 fails on purpose'\n"
             "mlkit.log_metric('score', -scale * (x - 3) ** 2)")


@pytest.fixture
def quad(project):
    project.job("quad", QUAD_PARAMS, QUAD_BODY)
    return project


def manifests(project, job="quad") -> list:
    return [json.loads((folder / "manifest.json").read_text()) for folder in project.run_folders(job)]


def test_sweep_runs_points_side_by_side_records_failures_and_ranks(quad):
    result = quad.mlkit("sweep", "run", "quad", "--grid", "x=1,2,3,4,5,99", "-p", "scale", "2", "--metric", "score",
                        "--max-workers", "2", check=1)
    table = result.stdout.splitlines()
    assert table[0].split() == ["rank", "point", "status", "run", "x", "score", "seconds"]  # only x varies
    assert [line.split()[4] for line in table[2:8]] == ["3", "2", "4", "1", "5", "99"]  # best first, failure last
    assert table[7].split()[2] == "failed"
    progress = [line for line in result.stderr.splitlines() if "done," in line]
    assert len(progress) == 6 and "6/6 done, 0 running, 1 failed" in progress[-1]
    assert "point 5 failed: AssertionError: x = 99 fails on purpose" in result.stderr

    sweep_id = result.stdout.split("sweep ")[-1].split(":")[0]
    found = manifests(quad)
    assert sorted(m["sweep"]["point"] for m in found) == [0, 1, 2, 3, 4, 5]
    assert {m["sweep"]["id"] for m in found} == {sweep_id}
    assert sorted(r.id for r in Archive(quad.archive).list_runs(job="quad")) == sorted(m["id"] for m in found)
    for folder in quad.run_folders("quad"):  # every kernel ran in the notebook's folder; nobody chdir'ed
        assert json.loads((folder / "values.json").read_text())["cwd"] == str(quad.root / "jobs")

    record = json.loads(quad.mlkit("sweep", "show", sweep_id[:17], "--json", check=0).stdout)
    assert (record["status"], record["executor"], record["max_workers"]) == ("finished", "local", 2)
    assert record["varying"] == ["x"]
    assert [p["values"]["x"] for p in record["points"]][:2] == [3.0, 2.0]
    listing = quad.mlkit("sweep", "list", check=0).stdout.splitlines()
    assert listing[2].split()[:5] == [sweep_id, "quad", "finished", "6", "1"]
    compared = quad.mlkit("runs", "compare", "--sweep", sweep_id, "--json", check=0)
    assert [row["x"] for row in json.loads(compared.stdout)][:3] == [3.0, 2.0, 4.0]


def test_second_sweep_reuses_cached_points(quad):
    (quad.root / "sweep.yaml").write_text("job: quad\nparams: {scale: 2}\ngrid:\n  x: [1.0, 3.0]\n"
                                          "random: {n: 2, seed: 1, x: {choice: [5.0, 6.0]}}\nmetric: score\n")
    quad.mlkit("sweep", "run", "quad", "--grid", "x=1,3", "-p", "scale", "2", check=0)
    assert len(quad.run_folders("quad")) == 2
    again = quad.mlkit("sweep", "run", "quad", "--grid", "x=1,3,5", "-p", "scale", "2", "--json", check=0)
    record = json.loads(again.stdout)
    assert sorted((p["values"]["x"], p["cached"]) for p in record["points"]) == [(1.0, True), (3.0, True),
                                                                                  (5.0, False)]
    assert len(quad.run_folders("quad")) == 3
    # a random draw replaces the grid's value of x: the file's points are deterministic (seeded)
    first = json.loads(quad.mlkit("sweep", "run", "-f", "sweep.yaml", "--json", check=0).stdout)
    second = json.loads(quad.mlkit("sweep", "run", "-f", "sweep.yaml", "--json", check=0).stdout)
    assert [p["values"] for p in first["points"]] == [p["values"] for p in second["points"]]
    assert all(p["cached"] for p in second["points"])


def test_a_bad_value_anywhere_refuses_the_whole_sweep(quad):
    result = quad.mlkit("sweep", "run", "quad", "--grid", "x=1,2,high", "--grid", "scale=1,2", check=2)
    assert "2 of 6 sweep points are invalid; nothing was run" in result.stderr
    assert "Traceback" not in result.stderr
    assert quad.run_folders() == [] and not (quad.archive / "sweeps").exists()
    assert "unknown parameter 'y'" in quad.mlkit("sweep", "run", "quad", "--grid", "y=1", check=2).stderr
    assert "--grid expects NAME=VALUES" in quad.mlkit("sweep", "run", "quad", "--grid", "x", check=2).stderr
    assert "max_workers must be a positive integer" in quad.mlkit("sweep", "run", "quad", "--grid", "x=1",
                                                                   "--max-workers", "0", check=2).stderr
    assert quad.run_folders() == []


def test_python_api_never_changes_the_working_directory(quad, monkeypatch):
    import mlkit
    monkeypatch.chdir(quad.root)
    before = os.getcwd()
    result = mlkit.sweep("quad", grid={"x": [2.0, 3.0]}, metric="score", max_workers=2)
    assert os.getcwd() == before
    assert [p.values["x"] for p in result.ranked()] == [3.0, 2.0]
    assert result.failed == []


def test_ctrl_c_keeps_the_running_point_and_runs_no_more(project):
    project.job("slow", "x: int = 0", "import time, mlkit\ntime.sleep(2.0)\nmlkit.log_metric('x', x)")
    sweep = subprocess.Popen([MLKIT, "sweep", "run", "slow", "--grid", "x=1,2,3", "--max-workers", "1"], cwd=project.root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        staging = project.archive / ".staging"
        deadline = time.monotonic() + 60
        while not (staging.is_dir() and any(staging.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        sweep.send_signal(signal.SIGINT)
        _, err = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=10)
    assert sweep.returncode == 1, err
    assert "interrupted: waiting for 1 running point(s)" in err
    record = json.loads(project.mlkit("sweep", "show", "2", "--json", check=0).stdout)
    assert record["status"] == "interrupted"
    assert sorted(p["status"] for p in record["points"]) == ["pending", "pending", "succeeded"]
    folders = project.run_folders("slow")
    assert len(folders) == 1  # the running point finished and is archived ...
    assert [r.id for r in Archive(project.archive).list_runs(job="slow")] == [folders[0].name]  # ... and indexed
