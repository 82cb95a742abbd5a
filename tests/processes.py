"""Helpers for tests that start real processes (a Dask cluster, an S3 server): bounded waits, and stopping each
process by its pid."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def wait_for(condition, seconds: float, what: str):
    """The first true value of `condition()`, polled for at most `seconds`; else an AssertionError naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, group: bool = False):
    """Kill `process` by its pid (its whole process group when it leads one: `group`) unless it ended; reap it."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    process.wait(timeout=10)


def start_logged(command: list, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `command` in folder `cwd` (created), its output in `cwd/process.log`; `env` adds to the environment."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(cwd / "process.log", "wb") as log:
        return subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


@contextmanager
def dask_cluster(folder: Path, env: dict | None = None):
    """`(address, {worker name: Popen})`: a Dask scheduler and two single-threaded workers on 127.0.0.1, each
    started in its own folder below `folder`; every one stopped by its pid at the end."""
    processes = []
    try:
        scheduler_file = folder / "scheduler" / "scheduler.json"
        processes.append(start_logged([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                      folder / "scheduler", env))
        address = wait_for(lambda: scheduler_file.exists() and json.loads(scheduler_file.read_text())["address"],
                           30, "the scheduler")
        workers = {}
        for name in ("w1", "w2"):
            workers[name] = start_logged([str(BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1",
                                          "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"], folder / name, env)
            processes.append(workers[name])
        from distributed import Client
        with Client(address, timeout=10) as client:
            client.wait_for_workers(2, timeout=30)
        yield address, workers
    finally:
        for process in reversed(processes):
            stop(process)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def moto_server(folder: Path):
    """The URL of an S3 server (moto's `moto_server`) started as its own process on 127.0.0.1, stopped at the end."""
    port = free_port()
    server = start_logged([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], folder)
    try:
        wait_for(lambda: _answers(port), 30, "the S3 server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)
