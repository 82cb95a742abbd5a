"""A sweep on a real Dask cluster (scheduler and two workers on loopback); one worker is SIGKILLed mid-sweep. With a
remote (an S3 server of its own), workers that have no path to the archive push their runs and the coordinator
pulls them."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project
from mlkit.archive import Archive
from processes import dask_cluster, moto_server, stop, wait_for


@pytest.fixture
def cluster(tmp_path):
    """`(address, {worker name: Popen})`: a scheduler and two single-threaded workers, each in its own folder."""
    with dask_cluster(tmp_path) as found:
        yield found


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


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _remote_manifests(fs, bucket: str, job: str) -> list:
    return [json.loads(fs.cat_file(path)) for path in fs.find(f"{bucket}/team/manifests/{job}") if path.endswith(".json")]


def test_workers_without_the_archive_push_each_point_once_through_the_remote(tmp_path):
    import s3fs
    (tmp_path / "project").mkdir()
    project = Project(tmp_path / "project")
    project.job("slow", "x: int = 0", "import time, mlkit\ntime.sleep(1.0)\nmlkit.log_metric('double', 2 * x)")
    with moto_server(tmp_path / "store") as endpoint, dask_cluster(tmp_path / "cluster", CREDENTIALS) as (address,
                                                                                                        workers):
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", use_listings_cache=False)
        fs.mkdir("sweeps")
        project.mlkit("remote", "add", "origin", "s3://sweeps/team", "--endpoint-url", endpoint, check=0)
        sweep = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlkit")), "sweep", "run", "slow", "--grid", "x=1,2,3,4", "--metric",
             "double", "--executor", "dask", "--address", address, "--max-workers", "2", "--remote", "origin", "--json"],
            cwd=project.root, env={**os.environ, **CREDENTIALS}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            victim = workers["w1"]
            staging = tmp_path / "cluster" / "w1" / ".mlkit-worker" / ".staging"  # w1's own archive
            wait_for(lambda: staging.is_dir() and any(p.name.endswith(f".{victim.pid}") for p in staging.iterdir()),
                     60, "worker w1 to start a point")
            os.kill(victim.pid, signal.SIGKILL)  # lost mid-point: its point is retried on w2
            out, err = sweep.communicate(timeout=180)
        finally:
            stop(sweep)
        assert sweep.returncode == 0, err
        pushed = _remote_manifests(fs, "sweeps", "slow")
        folders = {path.rsplit("/", 1)[-1] for path in fs.ls("sweeps/team/runs/slow")}
    record = json.loads(out)
    assert [p["metrics"]["double"] for p in record["points"]] == [8, 6, 4, 2]
    assert sorted(m["sweep"]["point"] for m in pushed) == [0, 1, 2, 3]  # each point on the remote exactly once
    assert folders == {m["id"] for m in pushed}  # and no folder of a lost attempt
    indexed = Archive(project.archive).list_runs(job="slow")
    assert sorted(r.id for r in indexed) == sorted(m["id"] for m in pushed) == sorted(p["run_id"] for p in record["points"])
    executed = {p.parent.name for name in ("w1", "w2") for p in (tmp_path / "cluster" / name).glob(".mlkit-worker/slow/*/manifest.json")}
    assert executed == {m["id"] for m in pushed}  # every run was executed in a worker's own archive, then pushed
    leftovers = list((project.archive / ".staging").iterdir()) if (project.archive / ".staging").is_dir() else []
    assert leftovers == []  # no worker ever staged in the coordinator's archive
