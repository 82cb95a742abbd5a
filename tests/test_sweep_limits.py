"""Sweeps refused before anything runs (too many points, a bad sweep file, a bad time limit), identical points run
once, and a sweep record that never stays "running"."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import MLKIT

QUAD_PARAMS = "x: float = 0.0\nscale: int = 1"
QUAD_BODY = "import mlkit\nmlkit.log_metric('score', -scale * (x - 3) ** 2)"


@pytest.fixture
def quad(project):
    project.job("quad", QUAD_PARAMS, QUAD_BODY)
    return project


def test_a_huge_grid_is_counted_and_refused_before_any_point_is_built(quad):
    grid = [arg for name in "abcdef" for arg in ("--grid", f"{name}=" + ",".join(map(str, range(10))))]
    started = time.monotonic()
    refused = quad.mlkit("sweep", "run", "quad", *grid, check=2)
    assert time.monotonic() - started < 20  # a million points are counted, never prepared
    assert "the sweep has 1000000 points, more than the limit of 10000" in refused.stderr
    assert "Traceback" not in refused.stderr and quad.run_folders() == []
    over = quad.mlkit("sweep", "run", "quad", "--grid", "x=1,2,3", "--max-points", "2", check=2)
    assert "the sweep has 3 points, more than the limit of 2" in over.stderr
    assert "limit of 2" in quad.mlkit("sweep", "run", "quad", "--grid", "x=1,2,3",
                                      env={"MLKIT_MAX_SWEEP_POINTS": "2"}, check=2).stderr


@pytest.mark.parametrize("body, named", [
    ("job: quad\nrandom: {n: 2, x: {uniform: 5}}", "random parameter 'x': uniform needs"),
    ("job: quad\nrandom: {n: 2, x: {loguniform: [0, 1]}}", "random parameter 'x': loguniform needs"),
    ("job: quad\nrandom: {n: 2, x: {choice: []}}", "random parameter 'x': choice needs"),
    ("job: quad\nrandom: {n: 2, scale: {randint: [1.5, 4]}}", "random parameter 'scale': randint needs"),
    ("job: [1, 2]\ngrid: {x: [1]}", "'job' must be a name"),
    ("job: quad\ngrid: {x: 3}", "grid parameter 'x'"),
    ("job: quad\ngrid: {x: [1]}\ngoal: up", "'goal' must be maximize or minimize"),
])
def test_a_bad_sweep_file_is_a_usage_error_naming_the_key(quad, body, named):
    (quad.root / "sweep.yaml").write_text(body)
    refused = quad.mlkit("sweep", "run", "-f", "sweep.yaml", check=2)
    assert named in refused.stderr and "Traceback" not in refused.stderr
    assert quad.run_folders() == [] and not (quad.archive / "sweeps").exists()


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_bad_timeout_is_a_usage_error_before_anything_runs(quad, value):
    for command in (["run", "quad"], ["sweep", "run", "quad", "--grid", "x=1,2"]):
        refused = quad.mlkit(*command, f"--timeout={value}", check=2)
        assert "timeout must be a positive number of seconds" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert quad.run_folders() == []


def test_the_python_api_checks_the_timeout_too(quad, monkeypatch):
    import mlkit
    from mlkit.errors import UsageError
    monkeypatch.chdir(quad.root)
    for value in (0, -5, float("nan")):
        with pytest.raises(UsageError, match="timeout must be a positive number"):
            mlkit.sweep("quad", grid={"x": [1.0]}, timeout=value)
        with pytest.raises(UsageError, match="timeout must be a positive number"):
            mlkit.run("quad", timeout=value)
    assert quad.run_folders() == []


def test_identical_points_run_once_and_count_for_all(quad):
    result = quad.mlkit("sweep", "run", "quad", "--grid", "x=2,2,2,2", "--json", check=0)
    record = json.loads(result.stdout)
    assert len(quad.run_folders("quad")) == 1  # one kernel, not four
    assert [p["status"] for p in record["points"]] == ["succeeded"] * 4
    assert len({p["run_id"] for p in record["points"]}) == 1
    assert sorted(p["point"] for p in record["points"]) == [0, 1, 2, 3]
    assert sum("same values as point 0" in p["note"] for p in record["points"]) == 3


def _wait_for_staging(project, process, seconds=60):
    staging = project.archive / ".staging"
    deadline = time.monotonic() + seconds
    while not (staging.is_dir() and any(staging.iterdir())) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)


def test_a_second_ctrl_c_still_leaves_the_record_interrupted(project):
    project.job("slow", "x: int = 0", "import time\ntime.sleep(30)")
    sweep = subprocess.Popen([MLKIT, "sweep", "run", "slow", "--grid", "x=1,2", "--max-workers", "1"],
                             cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_staging(project, sweep)
        time.sleep(0.5)
        sweep.send_signal(signal.SIGINT)
        time.sleep(1.0)
        sweep.send_signal(signal.SIGINT)  # "Ctrl-C again stops now"
        sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=10)
    record = json.loads(project.mlkit("sweep", "show", "2", "--json", check=0).stdout)
    assert record["status"] == "interrupted"


def test_a_killed_sweep_reads_as_interrupted(project):
    project.job("slow", "x: int = 0", "import time\ntime.sleep(30)")
    sweep = subprocess.Popen([MLKIT, "sweep", "run", "slow", "--grid", "x=1,2", "--max-workers", "1"],
                             cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        _wait_for_staging(project, sweep)
        assert json.loads(project.mlkit("sweep", "show", "2", "--json", check=0).stdout)["status"] == "running"
        sweep.kill()  # no chance to write its record
        sweep.wait(timeout=10)
    finally:
        try:
            os.killpg(sweep.pid, signal.SIGKILL)  # and its kernel
        except ProcessLookupError:
            pass
    record = json.loads(project.mlkit("sweep", "show", "2", "--json", check=0).stdout)
    assert record["status"] == "interrupted"
    assert project.mlkit("sweep", "list", check=0).stdout.splitlines()[2].split()[2] == "interrupted"
