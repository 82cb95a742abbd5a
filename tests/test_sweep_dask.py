"""A sweep on a real Dask cluster (scheduler and two workers on loopback); one worker is SIGKILLed mid-sweep."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlkit.archive import Archive
from processes import stop, wait_for

DASK = str(Path(sys.executable).with_name("dask"))


def start(args, cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    log = open(cwd / "process.log", "wb")
    return subprocess.Popen([DASK, *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def cluster(tmp_path):
    """`(address, {worker name: Popen})`: a scheduler and two single-threaded workers, each in its own folder."""
    processes = []
    try:
        scheduler_file = tmp_path / "cluster" / "scheduler.json"
        processes.append(start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                "--scheduler-file", str(scheduler_file)], tmp_path / "cluster"))
        address = wait_for(lambda: scheduler_file.exists() and json.loads(scheduler_file.read_text())["address"],
                           30, "the scheduler")
        workers = {}
        for name in ("w1", "w2"):
            workers[name] = start(["worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
                                   "--no-dashboard", "--host", "127.0.0.1"], tmp_path / name)
            processes.append(workers[name])
        from distributed import Client
        with Client(address, timeout=10) as client:
            client.wait_for_workers(2, timeout=30)
        yield address, workers
    finally:
        for process in reversed(processes):
            stop(process)


def test_sweep_survives_a_worker_killed_mid_point(project, cluster):
    address, workers = cluster
    project.job("slow", "x: int = 0", "import time, mlkit\ntime.sleep(1.0)\nmlkit.log_metric('double', 2 * x)")
    sweep = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlkit")), "sweep", "run", "slow", "--grid", "x=1,2,3,4,5,6",
         "--metric", "double", "--executor", "dask", "--address", address, "--max-workers", "2", "--json"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = workers["w1"]
        staging = project.archive / ".staging"
        # kill w1 while it is executing a point: its staging folder (run id . pid) exists
        wait_for(lambda: staging.is_dir() and any(p.name.endswith(f".{victim.pid}") for p in staging.iterdir()),
                 60, "worker w1 to start a point")
        os.kill(victim.pid, signal.SIGKILL)
        out, err = sweep.communicate(timeout=120)
    finally:
        stop(sweep)
    assert sweep.returncode == 0, err
    record = json.loads(out)
    assert sorted(p["values"]["x"] for p in record["points"]) == [1, 2, 3, 4, 5, 6]
    assert all(p["status"] == "succeeded" for p in record["points"])
    assert [p["metrics"]["double"] for p in record["points"]] == [12, 10, 8, 6, 4, 2]

    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in project.run_folders("slow")]
    assert sorted(m["sweep"]["point"] for m in manifests) == [0, 1, 2, 3, 4, 5]  # each archived exactly once
    assert {m["sweep"]["id"] for m in manifests} == {record["id"]}
    indexed = Archive(project.archive).list_runs(job="slow")
    assert sorted(r.id for r in indexed) == sorted(m["id"] for m in manifests)
    assert sorted(p["run_id"] for p in record["points"]) == sorted(m["id"] for m in manifests)
    leftovers = [p.name for p in staging.iterdir()] if staging.is_dir() else []
    assert all(name.endswith(f".{victim.pid}") for name in leftovers), leftovers  # only the killed attempt's
