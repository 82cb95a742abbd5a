"""Remotes: push and pull through a real S3 endpoint (moto's server) and a file:// share, the run cache asking a
remote, an interrupted push, a clear one-line error for each way a remote can be wrong, and how many requests push,
pull and the remote cache make (a fixed number of listings whatever the number of runs, one request per file)."""

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest
from conftest import Project

from mlkit.archive import Archive
from mlkit.cache import cache_key
from mlkit.objects import store_bytes
from mlkit.remotes import remote_from_setting
from mlkit.transfer import FEW, find_remote_cached, marker_key, pull, push, remote_object_key

READS_INPUT = ("import mlkit\nfrom mlkit.config import project_path\npath = mlkit.log_input(project_path(data))\n"
               "mlkit.log_metric('size', len(open(path).read()))")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
FILES_PER_RUN = 2  # in the runs `_runs` makes: notebook.ipynb and artifacts/metrics.json, besides the manifest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's server, in this process), stopped at the end."""
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A fresh bucket on the endpoint; dummy credentials in the environment (inherited by `mlkit` commands)."""
    import s3fs
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"b-{secrets.token_hex(4)}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint, key="testing", secret="testing").mkdir(name)
    return name


def _clone(root) -> Project:
    """A project at `root` whose job `j` reads `data.txt` (named relative to the project root)."""
    root.mkdir(parents=True)
    project = Project(root)
    (root / "data.txt").write_text("hello remote")
    project.job("j", "data = 'data.txt'", READS_INPUT)
    return project


def _add_s3(project, bucket, endpoint, extra=""):
    project.mlkit("remote", "add", "origin", f"s3://{bucket}/team", "--endpoint-url", endpoint, check=0)
    if extra:
        pyproject = project.root / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace("[tool.mlkit]\n", f"[tool.mlkit]\n{extra}\n", 1))


def _ids(project) -> list:
    return [run["id"] for run in json.loads(project.mlkit("runs", "list", "--json", check=0).stdout)]


def test_urls_where_a_folder_is_expected_are_refused(project):
    flag = project.mlkit("runs", "list", "--archive", "s3://my-bucket/runs", check=2)
    assert "mlkit remote add" in flag.stderr and "s3://my-bucket/runs" in flag.stderr
    env = project.mlkit("runs", "list", env={"MLKIT_ARCHIVE": "gs://b/r"}, check=2)
    assert "must be a local folder" in env.stderr
    assert not (project.root / "s3:").exists() and not (project.root / "gs:").exists()


def test_remote_add_list_remove_and_no_credentials_in_the_project(project):
    before = (project.root / "pyproject.toml").read_text()
    secret = project.mlkit("remote", "add", "origin", "s3://b/r", "--option", "aws_secret_access_key=x", check=2)
    assert "credentials" in secret.stderr and (project.root / "pyproject.toml").read_text() == before
    assert "no credentials in URLs" in project.mlkit("remote", "add", "o", "s3://me:pw@b/r", check=2).stderr
    project.mlkit("remote", "add", "origin", "s3://b/r", "--endpoint-url", "http://127.0.0.1:9", check=0)
    listed = json.loads(project.mlkit("remote", "list", "--json", check=0).stdout)
    assert listed == [{"name": "origin", "url": "s3://b/r", "options": {"endpoint_url": "http://127.0.0.1:9"}}]
    project.mlkit("remote", "remove", "origin", check=0)
    assert (project.root / "pyproject.toml").read_text() == before


def test_push_and_pull_between_clones_through_s3(tmp_path, bucket, s3_endpoint):
    a, b = _clone(tmp_path / "a"), _clone(tmp_path / "elsewhere" / "b")
    for clone in (a, b):
        _add_s3(clone, bucket, s3_endpoint)
    run = a.run_json("j", check=0)
    assert "pushed 1 run(s)" in a.mlkit("push", "--all", check=0).stdout
    assert "pushed 0 run(s)" in a.mlkit("push", "--all", check=0).stdout  # nothing sent twice
    a.mlkit("runs", "verify", "--remote", "origin", check=0)
    pulled = json.loads(b.mlkit("pull", "--all", "--objects", "--json", check=0).stdout)
    assert pulled["runs"] == 1 and pulled["objects"] >= 1
    assert _ids(b) == [run["id"]]
    assert b.mlkit("runs", "verify", check=0).returncode == 0
    assert "pulled 0 run(s)" in b.mlkit("pull", "--all", check=0).stdout


def test_a_fresh_archive_is_served_by_the_remote_cache(tmp_path, bucket, s3_endpoint):
    a = _clone(tmp_path / "a")
    _add_s3(a, bucket, s3_endpoint, 'push = "on-success"')
    first = a.run_json("j", "--remote", "origin", check=0)  # executes, then pushed on success
    assert first["cached"] is False
    shutil.rmtree(a.archive)  # a fresh runner: the archive is gone, the remote has the run
    again = a.mlkit("run", "j", "--remote", "origin", check=0)
    assert f"(cached from origin)  j  {first['id']}" in again.stdout
    assert _ids(a) == [first["id"]]


def test_a_clone_elsewhere_is_served_by_the_remote_cache(tmp_path, bucket, s3_endpoint):
    a, b = _clone(tmp_path / "a"), _clone(tmp_path / "elsewhere" / "b")
    for clone in (a, b):
        _add_s3(clone, bucket, s3_endpoint, 'push = "on-success"\ncache_remote = "origin"')
    first = a.run_json("j", check=0)
    assert b.run_json("j", check=0)["id"] == first["id"]  # B executes nothing


def test_a_push_killed_before_its_manifests_leaves_no_run_and_the_next_push_completes(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    a, b = _clone(tmp_path / "a"), _clone(tmp_path / "b")
    for clone in (a, b):
        clone.mlkit("remote", "add", "share", f"file://{share}", check=0)
    run = a.run_json("j", check=0)
    killed = textwrap.dedent("""
        import os, signal
        import mlkit.transfer as transfer
        transfer.write_small = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # every part sent, no manifest
        from mlkit.cli import main
        main(["push", "--all"])
    """)
    died = subprocess.run([sys.executable, "-c", killed], cwd=a.root, capture_output=True, text=True, timeout=60,
                          check=False)
    assert died.returncode == -9
    assert list((share / "runs").rglob("*.json")) and not (share / "manifests").exists()
    assert "pulled 0 run(s)" in b.mlkit("pull", "--all", check=0).stdout and _ids(b) == []
    assert "interrupted push" in b.mlkit("runs", "verify", "--remote", "share", check=1).stdout
    assert "pushed 1 run(s)" in a.mlkit("push", "--all", check=0).stdout
    b.mlkit("runs", "verify", "--remote", "share", check=0)
    assert "pulled 1 run(s)" in b.mlkit("pull", "--all", check=0).stdout and _ids(b) == [run["id"]]


def _remote_error(project, url, *options, env=None, code=1):
    project.mlkit("remote", "add", "x", url, *options, check=0)
    try:
        failed = project.mlkit("push", "--all", "--remote", "x", env=env, check=code)
    finally:
        project.mlkit("remote", "remove", "x", check=0)
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "remote 'x'" in lines[0], failed.stderr
    return lines[0]


def test_each_remote_problem_is_one_clear_line(project, bucket, s3_endpoint):
    assert "unknown scheme" in project.mlkit("remote", "add", "x", "nosuch://b/r", check=2).stderr
    if importlib.util.find_spec("gcsfs") is None:  # the gcs extra is not installed
        assert "pip install 'mlkit[gcs]'" in _remote_error(project, "gs://b/r")
    assert "does not exist" in _remote_error(project, "s3://no-such-bucket/r", "--endpoint-url", s3_endpoint)
    assert "cannot be reached" in _remote_error(project, f"s3://{bucket}/r", "--endpoint-url",
                                                f"http://127.0.0.1:{_free_port()}")
    bare = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    assert "credentials" in _remote_error(project, f"s3://{bucket}/r", "--endpoint-url", s3_endpoint, env=bare)


RACER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from mlkit.archive import Run
    from mlkit.remote_registry import RemoteRegistry, remote_promote
    from mlkit.remotes import remote_from_setting
    setting, action, number, go = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    registry = RemoteRegistry(remote_from_setting("origin", setting))
    run = Run(Path("."), manifest={"id": f"20240501-12000{number}-000-abcdef", "job": "train", "status": "succeeded",
              "artifacts": [{"path": "artifacts/model.skops", "sha256": str(number) * 64}]})
    while not go.exists():
        time.sleep(0.002)
    if action == "register":
        print(registry.register("m", run)["version"])
    else:
        print(json.dumps(remote_promote(registry, "m", number, expected=1, reason=f"runner {number}")))
""")


def _race(setting, action, numbers, go):
    racers = [subprocess.Popen([sys.executable, "-c", RACER, json.dumps(setting), action, str(n), str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in numbers]
    time.sleep(1.5)  # every racer imported and waiting
    go.touch()
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs
    return [out.strip() for out, _ in outputs]


@pytest.mark.parametrize("store", ["s3", "file"])
def test_the_registry_on_a_remote_cannot_fork(tmp_path, store, request):
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_history, remote_promote
    from mlkit.remotes import remote_from_setting
    if store == "s3":
        endpoint, bucket = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("bucket")
        setting = {"url": f"s3://{bucket}/team", "endpoint_url": endpoint}
    else:
        (tmp_path / "share").mkdir()
        setting = {"url": f"file://{tmp_path / 'share'}"}
    versions = _race(setting, "register", range(1, 9), tmp_path / "go-register")
    assert sorted(map(int, versions)) == list(range(1, 9))  # 8 processes, 8 distinct numbers
    registry = RemoteRegistry(remote_from_setting("origin", setting))
    remote_promote(registry, "m", 1)
    events = [json.loads(line) for line in _race(setting, "promote", [2, 3], tmp_path / "go-promote")]
    winners = [e for e in events if not e["reason"].startswith("declined")]
    assert len(winners) == 1 and remote_aliases(registry, "m") == {"champion": winners[0]["to_version"]}
    declined = [e for e in remote_history(registry, "m") if e["reason"].startswith("declined")]
    assert len(declined) == 1 and declined[0]["to_version"] == winners[0]["to_version"]


def test_the_store_stopped_mid_pipeline_is_one_line_and_the_archive_stays_sound(tmp_path):
    port = _free_port()
    store = subprocess.Popen([str(os.path.join(os.path.dirname(sys.executable), "moto_server")), "-H", "127.0.0.1",
                              "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = dict(CREDENTIALS)
        project = _clone(tmp_path / "a")
        for _ in range(100):  # until the server answers
            if subprocess.run(["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"],
                              capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        import s3fs
        s3fs.S3FileSystem(endpoint_url=f"http://127.0.0.1:{port}", key="testing", secret="testing").mkdir("stopping")
        _add_s3(project, "stopping", f"http://127.0.0.1:{port}", 'push = "on-success"')
        project.job("stop", "pid: int = 0", "import os, signal\nos.kill(pid, signal.SIGKILL)  # the store goes away")
        (project.root / "params" / "pipeline.yaml").write_text(
            f"stages:\n  - {{name: first, job: stop, params: {{pid: {store.pid}}}}}\n  - {{name: second, job: j}}\n")
        failed = project.mlkit("pipeline", "run", "--remote", "origin", env=env, check=1)
        lines = [line for line in failed.stderr.splitlines() if line.startswith("mlkit: error")]
        assert len(lines) == 1 and "remote 'origin'" in lines[0] and "cannot be reached" in lines[0], failed.stderr
        assert [run["job"] for run in json.loads(project.mlkit("runs", "list", "--json", check=0).stdout)] == ["stop"]
        project.mlkit("runs", "verify", check=0)
    finally:
        store.kill()
        store.wait(timeout=10)


def _counting(bucket, endpoint):
    """A remote on `bucket` whose client counts its requests by operation (`.requests`) and keeps what it lists (`.listed`)."""
    remote = remote_from_setting("origin", {"url": f"s3://{bucket}/team", "endpoint_url": endpoint})
    remote.requests, remote.listed = Counter(), []
    remote.fs.connect()

    def count(event_name, params, **_):
        remote.requests[event_name.rsplit(".", 1)[-1]] += 1
        remote.listed += [params["Prefix"]] if "Prefix" in params else []
    remote.fs.s3.meta.events.register("before-parameter-build.s3", count)
    return remote


def _runs(archive, count: int) -> list:
    """`count` small runs of job `train`, each with a notebook, a metrics file and an environment object of its own."""
    runs = []
    for number in range(count):
        run_id = f"20240501-1200{number:02d}-000-{number:06x}"
        staging = archive.stage(run_id)
        (staging / "notebook.ipynb").write_text(json.dumps({"cells": [{"source": f"x = {number}"}]}))
        (staging / "artifacts" / "metrics.json").write_text(json.dumps({"auc": number}))
        data = store_bytes(archive.root, f"row,{number}\n".encode())
        base = f"{number:064x}"
        runs.append(archive.commit(staging, {
            "id": run_id, "job": "train", "status": "succeeded", "params": {}, "metrics": {}, "cache_base": base,
            "cache_key": cache_key(base, []), "inputs": [], "environment": {"lock": data}}))
    return runs


def _counted(remote, action) -> Counter:
    """The requests `action()` makes, by operation."""
    remote.requests.clear()
    remote.listed.clear()
    action()
    return Counter(remote.requests)


@pytest.mark.parametrize("count", [3, FEW + 6])
def test_a_push_sends_each_file_once_and_asks_about_a_few_runs_or_lists_many(tmp_path, bucket, s3_endpoint, count):
    remote = _counting(bucket, s3_endpoint)
    archive = Archive(tmp_path / "a")
    runs = _runs(archive, count)
    sent = _counted(remote, lambda: push(archive, remote, runs, progress=False))
    assert sent["PutObject"] == count * (FILES_PER_RUN + 1) + count  # files, markers, objects: each once
    assert "HeadObject" not in sent
    again = _counted(remote, lambda: push(archive, remote, runs, progress=False))  # nothing new
    assert again == {"ListObjectsV2": count if count <= FEW else 1}


def test_a_push_of_one_run_asks_about_it_alone_whatever_the_remote_holds(tmp_path, bucket, s3_endpoint):
    remote = _counting(bucket, s3_endpoint)
    archive = Archive(tmp_path / "a")
    *before, new = _runs(archive, 12)
    push(archive, remote, before, progress=False)
    sent = _counted(remote, lambda: push(archive, remote, [new], progress=False))
    marker = marker_key(remote, "train", new.manifest["cache_base"], new.id)
    asked = [key.split("/", 1)[1] for key in (marker, remote_object_key(remote, new.manifest["environment"]["lock"]))]
    assert sorted(remote.listed) == sorted(["", *asked])  # its marker, its object, the bucket: no folder listed
    assert sent == {"ListObjectsV2": 3, "PutObject": FILES_PER_RUN + 2}


@pytest.mark.parametrize("count", [3, 40])
def test_a_pull_reads_each_file_once_and_asks_no_sizes(tmp_path, bucket, s3_endpoint, count):
    remote = _counting(bucket, s3_endpoint)
    a, b = Archive(tmp_path / "a"), Archive(tmp_path / "b")
    push(a, remote, _runs(a, count), progress=False)
    got = _counted(remote, lambda: pull(b, remote, everything=True, objects=True))
    assert got["GetObject"] == count * (FILES_PER_RUN + 1) + count  # markers, files, objects
    assert "HeadObject" not in got and got["ListObjectsV2"] <= 5
    assert _counted(remote, lambda: pull(b, remote, everything=True)) == {"ListObjectsV2": 3}  # runs, 2 records


def test_a_remote_cache_hit_reads_its_manifest_once_and_a_miss_is_one_listing(tmp_path, bucket, s3_endpoint):
    remote = _counting(bucket, s3_endpoint)
    a = Archive(tmp_path / "a")
    push(a, remote, _runs(a, 5), progress=False)
    fresh = Archive(tmp_path / "fresh")
    hits = []
    counted = _counted(remote, lambda: hits.append(find_remote_cached(fresh, remote, "train", f"{3:064x}")))
    assert counted == {"ListObjectsV2": 2, "GetObject": 1 + FILES_PER_RUN}  # the base, the run's folder; its files
    assert hits[0].id == "20240501-120003-000-000003" and hits[0].cached_from == "origin"
    assert _counted(remote, lambda: find_remote_cached(fresh, remote, "train", "f" * 64)) == {"ListObjectsV2": 1}


def test_a_pulled_run_fetches_its_snapshots_when_a_command_needs_them(tmp_path, bucket, s3_endpoint):
    a, b = _clone(tmp_path / "a"), _clone(tmp_path / "elsewhere" / "b")
    for clone in (a, b):
        _add_s3(clone, bucket, s3_endpoint)
    run = a.run_json("j", check=0)
    a.mlkit("push", "--all", check=0)
    pulled = json.loads(b.mlkit("pull", "--all", "--json", check=0).stdout)
    assert pulled["runs"] == 1 and pulled["objects"] == 0  # folders only: no snapshot came
    assert not (b.archive / "objects" / "sha256").exists()
    checkout = b.mlkit("data", "checkout", run["id"], "--to", tmp_path / "out", check=0)
    assert "not written" not in checkout.stdout
    assert [p.read_text() for p in (tmp_path / "out").iterdir()] == ["hello remote"]
    (b.root / "data.txt").write_text("B's own data")  # A's file is still there, but B reproduces in B
    reproduced = b.mlkit("reproduce", run["id"], "--json", check=0)
    report = json.loads(reproduced.stdout)
    assert report["matched"] is True
    inputs = [row for row in report["rows"] if row["aspect"] == "input"]
    assert [(row["item"], row["verdict"]) for row in inputs] == [(str(b.root / "data.txt"), "restored from snapshot")]
    again = json.loads(b.mlkit("runs", "show", report["reproduced"], "--json", check=0).stdout)
    assert again["cwd"] == str(b.root / "jobs") and again["project"] == str(b.root)  # where A ran it: jobs/


def test_a_sweep_says_which_points_a_remote_cache_served(tmp_path, bucket, s3_endpoint):
    a = _clone(tmp_path / "a")
    (a.root / "other.txt").write_text("another input")
    _add_s3(a, bucket, s3_endpoint, 'push = "on-success"\ncache_remote = "origin"')
    first = a.mlkit("sweep", "run", "j", "--grid", "data=data.txt,other.txt", check=0)
    assert "cached" not in first.stdout
    shutil.rmtree(a.archive)  # a fresh runner: both points are on the remote
    again = a.mlkit("sweep", "run", "j", "--grid", "data=data.txt,other.txt", check=0)
    assert again.stdout.count("succeeded (cached from origin)") == 2, again.stdout
    assert "2 cached or identical, 0 to run" in again.stderr
