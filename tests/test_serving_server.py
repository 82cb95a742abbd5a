"""`mlkit serve` as a real uvicorn process on a free loopback port: SIGTERM, kill -9, hot reload under load."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import httpx
import pytest

from mlkit.prediction_log import complete_lines, log_folder, read_log
from mlkit.pseudonyms import PSEUDONYM_KEY_ENV
import mlkit.registry as registry_module
from mlkit.registry import Registry, promote

from test_serving_app import attempts_rows, make_served_archive, register_version, tamper

MLKIT = str(Path(sys.executable).with_name("mlkit"))
TOKEN = "server-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    "A `mlkit serve` subprocess on 127.0.0.1; stop() ends it by its pid."

    def __init__(self, archive_root: Path, reference: str = "edtech@champion", extra=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, PSEUDONYM_KEY_ENV: "server-test-secret", "SERVE_TOKEN": TOKEN}
        self.process = subprocess.Popen(
            [MLKIT, "serve", reference, "--port", str(self.port), "--archive", str(archive_root),
             "--token-env", "SERVE_TOKEN", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self, seconds: float = 60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                if self.client.get("/health/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready in time")

    def stop(self, sig=signal.SIGTERM, seconds: float = 30) -> int:
        self.client.close()
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)


@pytest.fixture
def archive(tmp_path):
    return make_served_archive(tmp_path, versions=3)


def steady_load(server: Server, rows: list, stop: threading.Event, results: list, limit: int = 400):
    "Send scoring requests one after another until `stop` is set (at most `limit`); record (status, version)."
    with httpx.Client(base_url=server.url, timeout=10, headers=AUTH) as client:
        for _ in range(limit):
            if stop.is_set():
                return
            try:
                answer = client.post("/invocations", json={"dataframe_records": rows})
                results.append((answer.status_code, answer.headers.get("x-model-version")))
            except httpx.TransportError as error:
                results.append((type(error).__name__, None))


def promote_under_load(archive, loops, stop, results: list, seen_by=all, seconds: float = 20):
    """Start the load `loops`, promote edtech v2 half a second in, wait (at most `seconds`) until `seen_by` of the
    loops' `results` ended on version 2, then stop the loops (also when something failed)."""
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.5)
        promote(Registry(archive), "edtech", 2, reason="test")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not seen_by(out and out[-1][1] == "2" for out in results):
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        for loop in loops:
            loop.join(30)


def test_server_endpoints_hot_reload_under_load_tamper_and_sigterm(archive):
    server = Server(archive.root)
    try:
        server.wait_ready()
        rows = attempts_rows()[:3]
        assert server.client.post("/invocations", json={"dataframe_records": rows}).status_code == 401
        first = server.client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
        assert first.status_code == 200 and first.headers["x-model-version"] == "1"
        assert server.client.get("/health/live").status_code == 200
        assert server.client.get("/metrics", headers=AUTH).text.startswith("# HELP")
        assert server.client.post("/recommend", json={"attempts": rows, "k": 2}, headers=AUTH).status_code == 200
        assert server.client.post("/invocations", content=b"{", headers=AUTH).status_code == 400

        stop, results = threading.Event(), [[], []]
        loops = [threading.Thread(target=steady_load, args=(server, rows, stop, out)) for out in results]
        promote_under_load(archive, loops, stop, results, seen_by=any, seconds=15)
        for out in results:
            assert out and all(status == 200 for status, _ in out), [r for r in out if r[0] != 200][:3]
            versions = [int(version) for _, version in out]
            assert versions == sorted(versions) and versions[-1] == 2  # 1s, then 2s: no request failed or went back

        tamper(archive, 3)
        # promote refuses a tampered file itself: the file is taken to change after the alias moved to it,
        # which only the server can notice
        with mock.patch.object(registry_module, "_check_model_sha256", lambda *args: None):
            promote(Registry(archive), "edtech", 3, reason="test")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not server.client.get("/version", headers=AUTH).json()["reloads"][
                -1].get("outcome") == "refused":
            time.sleep(0.1)
        version = server.client.get("/version", headers=AUTH).json()
        assert version["version"] == 2 and version["reloads"][-1]["outcome"] == "refused"
        assert server.client.post("/invocations", json={"dataframe_records": rows},
                                  headers=AUTH).headers["x-model-version"] == "2"
        assert {version for out in results for _, version in out} == {"1", "2"}
        answered = 3 + sum(len(out) for out in results)  # the 200 answers of /invocations and /recommend
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.process.stderr.read()
    folder = log_folder(archive.root, "edtech")
    assert list(folder.glob("*.jsonl")) == []  # the last segment was compacted at shutdown
    logged = read_log(folder)
    assert (logged.status == 200).sum() == answered


def test_prediction_log_survives_kill_9(archive):
    server = Server(archive.root)
    folder = log_folder(archive.root, "edtech")
    try:
        server.wait_ready()
        rows = attempts_rows()[:2]
        before = len(read_log(folder))
        answered = 0
        for _ in range(25):
            answer = server.client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
            assert answer.status_code == 200
            answered += 1
    finally:
        code = server.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    segments = list(folder.glob("*.jsonl"))
    assert len(segments) == 1
    assert len(complete_lines(segments[0])) == answered  # every answered request is on disk
    assert len(read_log(folder)) == before + answered
    restarted = Server(archive.root)  # the next server compacts the dead one's segment
    try:
        restarted.wait_ready()
        assert not segments[0].exists() and segments[0].with_suffix(".parquet").exists()
    finally:
        assert restarted.stop() == 0
    assert len(read_log(folder)) == before + answered


def test_serve_refuses_bad_start(tmp_path, monkeypatch, capsys):
    """Refusals before any socket is opened: one line on stderr, exit 2 (checked in-process: no server starts)."""
    from mlkit.cli import main
    archive = make_served_archive(tmp_path, versions=1)
    monkeypatch.delenv("SERVE_TOKEN", raising=False)
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    root = str(archive.root)
    assert main(["serve", "edtech@champion", "--archive", root, "--token-env", "SERVE_TOKEN"]) == 2
    assert "SERVE_TOKEN: the variable is not set" in capsys.readouterr().err
    register_version(archive, seed=5, source_path="exports/fall.csv")
    assert main(["serve", "edtech:2", "--archive", root]) == 2
    assert "MLKIT_PSEUDONYM_KEY" in capsys.readouterr().err
    assert main(["serve", "nobody@champion", "--archive", root]) == 2
    assert "no registered model matches" in capsys.readouterr().err
