"""Push and pull of 1,000 small runs with their objects through a local S3 server (moto), side by side with
`dvc push` / `dvc pull` of the same files and a plain recursive s3fs put (the floor); a push with nothing new; and
the cost of a remote cache hit on top of a local one. Needs `moto[server]` and s3fs (the dev extra) and, for the
comparison, DVC with dvc-s3, which is not a dependency of mlkit: `$DVC` names its program, else `dvc` next to this
Python, else /tmp/dvc-venv/bin/dvc (`python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip install "dvc[s3]"`).
Each command's line says how many requests the store received (by kind), which a loaded machine does not change.
One run, then cleanup."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlkit.archive import Archive
from mlkit.cache import cache_key, find_cached
from mlkit.objects import store_bytes
from mlkit.remotes import remote_from_setting
from mlkit.transfer import find_remote_cached

RUNS = int(os.environ.get("BENCH_RUNS", "1000"))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
BIN = Path(sys.executable).parent


def dvc_program() -> str:
    "DVC's program: `$DVC`, else next to this Python, else in the throwaway /tmp/dvc-venv."
    found = [os.environ.get("DVC"), BIN / "dvc", Path("/tmp/dvc-venv/bin/dvc")]
    return str(next((path for path in found if path and Path(path).is_file()), "dvc"))

# moto's server, counting the requests it serves; GET /_requests answers the counts so far and zeroes them
COUNTING_SERVER = """
import collections, json, sys, threading
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
app, counts, lock = DomainDispatcherApplication(create_backend_app), collections.Counter(), threading.Lock()
def counting(environ, start_response):
    if environ["PATH_INFO"] == "/_requests":
        with lock:
            body = json.dumps(dict(sorted(counts.items()))).encode()
            counts.clear()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    listing = environ["REQUEST_METHOD"] == "GET" and "list-type" in environ.get("QUERY_STRING", "")
    with lock:
        counts["LIST" if listing else environ["REQUEST_METHOD"]] += 1
    return app(environ, start_response)
make_server("127.0.0.1", int(sys.argv[1]), counting, True, request_handler=MotoRequestHandler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def served(endpoint: str) -> dict:
    "The requests the store served since the last call, by kind (PUT, GET, HEAD, LIST, ...); zeroes the count."
    with urllib.request.urlopen(f"{endpoint}/_requests") as answer:
        return json.loads(answer.read())


def timed(command, cwd, endpoint: str) -> float:
    "Wall time of shell-free `command` run in `cwd` (it must succeed), printed with the requests it made."
    served(endpoint)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env={**os.environ, **CREDENTIALS})
    took = time.perf_counter() - start
    counts = served(endpoint)
    print(f"  {Path(command[0]).name} {' '.join(command[1:])}: {took:.2f} s, {sum(counts.values())} requests "
          f"{counts}", flush=True)
    return took


def make_runs(archive: Archive):
    "RUNS small runs, each with a notebook, a metrics file, one input object of its own and a shared environment."
    lock = store_bytes(archive.root, b"numpy==2.0\npandas==2.2\n" * 20)
    for number in range(RUNS):
        run_id = f"20240501-{number // 3600:02d}{number // 60 % 60:02d}{number % 60:02d}-000-{number:06x}"
        staging = archive.stage(run_id)
        (staging / "notebook.ipynb").write_text(json.dumps({"cells": [{"source": f"x = {number}"}] * 20}))
        (staging / "artifacts" / "metrics.json").write_text(json.dumps({"auc": number / RUNS}))
        data = store_bytes(archive.root, f"row,{number}\n".encode() * 50)
        base = f"{number:064x}"
        inputs = [] if number == 7 else [{"path": f"data/{number}.csv", "sha256": data, "snapshot": True, "type": "file"}]
        archive.commit(staging, {"id": run_id, "job": "train", "status": "succeeded", "params": {"n": number},
                                 "metrics": {"auc": number / RUNS}, "cache_base": base, "cache_key": cache_key(base, []),
                                 "inputs": inputs, "environment": {"lock": lock}})


def project(root: Path, endpoint: str, bucket: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[tool.mlkit]\narchive = "runs"\n\n[tool.mlkit.remotes.origin]\n'
                                         f'url = "s3://{bucket}/mlkit"\nendpoint_url = "{endpoint}"\n')
    return root


def main():
    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-remote-"))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", COUNTING_SERVER, str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(CREDENTIALS)
    try:
        time.sleep(2)
        import s3fs
        fs = s3fs.S3FileSystem(endpoint_url=endpoint)
        fs.mkdir("bench")
        a = project(work / "a", endpoint, "bench")
        make_runs(Archive(a / "runs"))
        files = sum(1 for path in (a / "runs").rglob("*") if path.is_file() and path.name != "index.sqlite")
        print(f"{RUNS} runs, {files} files (objects included) in the archive")
        mlkit = [str(BIN / "mlkit")]
        push = timed([*mlkit, "push", "--all"], a, endpoint)
        again = timed([*mlkit, "push", "--all"], a, endpoint)
        b = project(work / "b", endpoint, "bench")
        pull = timed([*mlkit, "pull", "--all", "--objects"], b, endpoint)

        start = time.perf_counter()
        fs.put(str(a / "runs"), "bench/plain", recursive=True)
        plain = time.perf_counter() - start

        dvc = [dvc_program()]
        d = work / "dvc"
        d.mkdir()
        shutil.copytree(a / "runs", d / "runs", ignore=shutil.ignore_patterns("index.sqlite*"))
        for command in (["init", "--no-scm", "-q"], ["remote", "add", "-d", "s3r", "s3://bench/dvc"],
                        ["remote", "modify", "s3r", "endpointurl", endpoint], ["add", "-q", "runs"]):
            subprocess.run([*dvc, *command], cwd=d, check=True, capture_output=True)
        dvc_push = timed([*dvc, "push", "-q"], d, endpoint)
        shutil.rmtree(d / "runs")
        shutil.rmtree(d / ".dvc" / "cache")
        dvc_pull = timed([*dvc, "pull", "-q"], d, endpoint)

        local_store = Archive(a / "runs")
        start = time.perf_counter()
        assert find_cached(local_store, "train", f"{7:064x}") is not None
        local_hit = time.perf_counter() - start
        remote = remote_from_setting("origin", {"url": "s3://bench/mlkit", "endpoint_url": endpoint})
        _ = remote.fs  # opening the filesystem is part of any command that uses a remote
        start = time.perf_counter()
        assert find_remote_cached(Archive(work / "fresh"), remote, "train", f"{7:064x}") is not None
        remote_hit = time.perf_counter() - start

        print(f"push   mlkit {push:6.2f} s   dvc {dvc_push:6.2f} s   ratio {push / dvc_push:.2f}x   "
              f"(s3fs recursive put, the floor: {plain:.2f} s)")
        print(f"pull   mlkit {pull:6.2f} s   dvc {dvc_pull:6.2f} s   ratio {pull / dvc_pull:.2f}x")
        print(f"push with nothing new: {again:.2f} s for {RUNS} runs (goal <= 1 s, CLI start included)")
        print(f"cache hit: local {local_hit * 1000:.0f} ms, remote {remote_hit * 1000:.0f} ms "
              f"(+{(remote_hit - local_hit) * 1000:.0f} ms; goal <= 500 ms on top)")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
