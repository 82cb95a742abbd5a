"""Pipelines with a remote: stage lines name the remote cache that served them, and the pipeline's lease on the
remote keeps two runners (two clones, two machines) from running one pipeline at once."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

from conftest import MLKIT, Project
from processes import stop, wait_for
import test_remotes
from test_remotes import _add_s3, _clone

s3_endpoint, bucket = test_remotes.s3_endpoint, test_remotes.bucket  # its fixtures: a moto S3 server, a fresh bucket

PIPELINE = "stages:\n  - {name: first, job: j}\n"


def test_stage_lines_name_the_remote_whose_cache_served_them(tmp_path, bucket, s3_endpoint):
    a = _clone(tmp_path / "a")
    _add_s3(a, bucket, s3_endpoint, 'push = "on-success"')
    (a.root / "params" / "pipeline.yaml").write_text(PIPELINE)
    first = a.mlkit("pipeline", "run", "--remote", "origin", check=0)
    assert "first (j): succeeded run" in first.stderr
    for options in ([], ["--max-workers", "2"]):  # one after another, and side by side
        shutil.rmtree(a.archive)  # a fresh runner: the remote has the run
        again = a.mlkit("pipeline", "run", "--remote", "origin", *options, check=0)
        assert "first (j): succeeded (cached from origin) run" in again.stderr, again.stderr
        assert "succeeded (cached from origin)" in again.stdout  # the summary table
    status = a.mlkit("pipeline", "status", check=0)
    assert "succeeded (cached from origin)" in status.stdout, status.stdout


def _slow_clone(root, bucket_name, endpoint, seconds: float) -> Project:
    """A clone whose pipeline has one stage that sleeps `seconds`, with remote `origin` on the S3 endpoint."""
    project = _clone(root)
    _add_s3(project, bucket_name, endpoint)
    project.job("slow", "seconds: float = 0", "import time\ntime.sleep(seconds)")
    (project.root / "params" / "pipeline.yaml").write_text(
        f"stages:\n  - {{name: nap, job: slow, params: {{seconds: {seconds}}}}}\n")
    return project


def _start(project, *options, env=None) -> subprocess.Popen:
    """`mlkit pipeline run --remote origin` in `project`, in its own process group (its kernels with it)."""
    return subprocess.Popen([MLKIT, "pipeline", "run", "--remote", "origin", *options], cwd=project.root,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _lease(bucket_name, endpoint) -> dict | None:
    """The pipeline's lease object on the remote, if there is one."""
    import s3fs
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", use_listings_cache=False)
    try:
        return json.loads(fs.cat_file(f"{bucket_name}/team/leases/pipelines/pipeline.json"))
    except FileNotFoundError:
        return None


def _held(bucket_name, endpoint) -> dict | None:
    lease = _lease(bucket_name, endpoint)
    return lease if lease and lease["expires_at"] > time.time() else None


def test_a_runner_on_another_clone_is_refused_while_the_lease_is_held_or_waits_for_it(tmp_path, bucket, s3_endpoint):
    a = _slow_clone(tmp_path / "a", bucket, s3_endpoint, 6)
    b = _slow_clone(tmp_path / "elsewhere" / "b", bucket, s3_endpoint, 0.1)
    holder = _start(a, env={"MLKIT_PIPELINE_LEASE": "2"})  # A's stage outlasts its lease: renewals keep it
    waiter = None
    try:
        lease = wait_for(lambda: _held(bucket, s3_endpoint), 60, "runner A to take the lease")
        assert lease["pid"] == holder.pid and lease["host"] == socket.gethostname()
        wait_for(lambda: (_held(bucket, s3_endpoint) or lease)["renewed_at"] > lease["renewed_at"] + 1, 30,
                 "runner A to renew its lease")
        refused = b.mlkit("pipeline", "run", "--remote", "origin", check=1)
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, refused.stderr
        assert "already running on remote 'origin'" in lines[0] and f"pid {holder.pid} on " in lines[0]
        assert f"run {lease['run']}" in lines[0] and "--wait" in lines[0]
        assert b.run_folders() == []  # nothing ran
        waiter = _start(b, "--wait")
        _, err = holder.communicate(timeout=120)
        assert holder.returncode == 0, err
        _, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
    finally:
        stop(holder, group=True)
        if waiter is not None:
            stop(waiter, group=True)
    ran_a, ran_b = (json.loads((p.run_folders("slow")[0] / "manifest.json").read_text()) for p in (a, b))
    assert ran_b["started_at"] > ran_a["finished_at"]  # B waited for A's lease
    assert _lease(bucket, s3_endpoint)["expires_at"] == 0  # released at the end


def test_a_lease_left_by_a_killed_runner_is_taken_over_by_exactly_one_runner_once_it_expires(tmp_path, bucket,
                                                                                              s3_endpoint):
    a = _slow_clone(tmp_path / "a", bucket, s3_endpoint, 60)
    takers = [_slow_clone(tmp_path / name, bucket, s3_endpoint, 0.1) for name in ("b", "c")]
    killed = _start(a, env={"MLKIT_PIPELINE_LEASE": "8"})
    try:
        wait_for(lambda: _held(bucket, s3_endpoint) and a.archive.joinpath(".staging").is_dir(), 60,
                 "runner A to take the lease and start its stage")
        os.killpg(killed.pid, signal.SIGKILL)  # no release: the lease stays until it expires
        killed.wait(timeout=10)
    finally:
        stop(killed, group=True)
    left = _lease(bucket, s3_endpoint)
    assert left["pid"] == killed.pid and left["expires_at"] > time.time()
    assert f"pid {killed.pid} on " in takers[0].mlkit("pipeline", "run", "--remote", "origin", check=1).stderr
    wait_for(lambda: time.time() > left["expires_at"] + 0.5, 30, "the lease to expire")
    racing = [_start(taker) for taker in takers]  # two runners take over the expired lease at once
    try:
        outcomes = [runner.communicate(timeout=120) for runner in racing]
    finally:
        for runner in racing:
            stop(runner, group=True)
    codes = [runner.returncode for runner in racing]
    assert sorted(codes) == [0, 1], outcomes
    winner = racing[codes.index(0)]
    assert f"pid {winner.pid} on " in outcomes[codes.index(1)][1]  # the loser names the winner
    assert _lease(bucket, s3_endpoint)["expires_at"] == 0


def test_a_runner_stopped_by_sigterm_gives_the_lease_back(tmp_path, bucket, s3_endpoint):
    a = _slow_clone(tmp_path / "a", bucket, s3_endpoint, 60)
    stopped = _start(a)
    try:
        wait_for(lambda: _held(bucket, s3_endpoint) and a.archive.joinpath(".staging").is_dir(), 60,
                 "runner A to take the lease and start its stage")
        os.kill(stopped.pid, signal.SIGTERM)
        _, err = stopped.communicate(timeout=60)
    finally:
        stop(stopped, group=True)
    assert stopped.returncode == 1 and "interrupted" in err, err
    assert _lease(bucket, s3_endpoint)["expires_at"] == 0  # released: the next runner need not wait for expiry
