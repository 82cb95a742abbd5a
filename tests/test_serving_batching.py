"""Adaptive batching in `mlkit serve` (real uvicorn processes): the same answers as without it, request by request."""

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mlkit.prediction_log import complete_lines, log_folder, read_log

from test_serving_app import attempts_rows, make_served_archive
from test_serving_server import AUTH, Server, promote_under_load

CLIENTS = 16


@pytest.fixture
def archive(tmp_path):
    return make_served_archive(tmp_path, versions=2)


def payloads(count: int = 96) -> list:
    "Scoring requests of 1 to 5 rows; every fifth breaks the contract (a score over 100)."
    rows = attempts_rows(n_students=8, seed=21)
    bodies = []
    for index in range(count):
        chosen = [dict(rows[(index * 7 + k) % len(rows)]) for k in range(1 + index % 5)]
        if index % 5 == 4:
            chosen[0]["avg_quiz_score"] = 130.5
        bodies.append({"dataframe_records": chosen})
    return bodies


def send_all(server: Server, bodies: list, clients: int = CLIENTS) -> list:
    "Post every body from `clients` threads at once; (status, answer JSON, request id, version) per body, in order."
    local = threading.local()

    def post(body):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=30, headers=AUTH)
        answer = local.client.post("/invocations", json=body)
        return answer.status_code, answer.json(), answer.headers["x-request-id"], answer.headers["x-model-version"]

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(post, bodies))


def model_calls(server: Server) -> float:
    text = server.client.get("/metrics", headers=AUTH).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("mlkit_model_calls ")))


def test_batched_answers_equal_unbatched_request_by_request(archive):
    bodies = payloads()
    answers = {}
    for name, extra in (("batched", []), ("alone", ["--max-batch-rows", "0"])):
        server = Server(archive.root, extra=extra)
        try:
            server.wait_ready()
            answers[name] = send_all(server, bodies)
            answers[name + " calls"] = model_calls(server)
        finally:
            assert server.stop() == 0
    for index, (batched, alone) in enumerate(zip(answers["batched"], answers["alone"], strict=True)):
        assert batched[0] == alone[0], index  # the status, and the body: errors exactly, predictions up to rounding
        if batched[0] == 200:
            assert batched[1]["predictions"] == pytest.approx(alone[1]["predictions"], rel=1e-12, abs=0), index
        else:
            assert batched[1] == alone[1], index
    statuses = [status for status, *_ in answers["batched"]]
    assert statuses.count(422) == len(bodies) // 5 and statuses.count(200) == len(bodies) - len(bodies) // 5
    accepted = len(bodies) - len(bodies) // 5
    assert answers["alone calls"] == accepted
    assert answers["batched calls"] < accepted  # concurrent requests shared model calls
    logged = read_log(log_folder(archive.root, "edtech"))
    by_id = logged.set_index("request_id")
    for status, body, request_id, _ in answers["batched"]:  # one line per request, with its own rows
        line = by_id.loc[request_id]
        assert line["status"] == status
        if status == 200:
            assert json.loads(line["outputs"]) == body["predictions"]


def test_kill_9_under_batched_load_loses_no_answered_request(archive):
    server = Server(archive.root)
    folder = log_folder(archive.root, "edtech")
    answered, stop = [], threading.Event()

    def load():
        with httpx.Client(base_url=server.url, timeout=10, headers=AUTH) as client:
            rows = attempts_rows()[:3]
            while not stop.is_set():
                try:
                    answer = client.post("/invocations", json={"dataframe_records": rows})
                except httpx.TransportError:
                    return
                if answer.status_code == 200:
                    answered.append(answer.headers["x-request-id"])

    try:
        server.wait_ready()
        loops = [threading.Thread(target=load) for _ in range(CLIENTS)]
        for loop in loops:
            loop.start()
        deadline, health = time.monotonic() + 30, []
        while len(answered) < 150 and time.monotonic() < deadline:
            started = time.monotonic()
            assert server.client.get("/health/live", timeout=5).status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.05)
        calls, count = model_calls(server), len(answered)
    finally:
        code = server.stop(signal.SIGKILL)
        stop.set()
        for loop in loops:
            loop.join(30)
    assert code == -signal.SIGKILL and len(answered) >= 150
    assert calls < count  # the load was batched
    assert max(health) < 1.0, health  # scoring never stalled the event loop
    segments = list(folder.glob("*.jsonl"))
    logged = {line["request_id"] for segment in segments for line in complete_lines(segment)}
    assert set(answered) <= logged  # every answered request was logged before its answer left


def test_reload_under_batched_load_zero_failures(archive):
    server = Server(archive.root)
    results, stop = [[] for _ in range(CLIENTS)], threading.Event()

    def load(out):
        with httpx.Client(base_url=server.url, timeout=10, headers=AUTH) as client:
            rows = attempts_rows()[:2]
            for _ in range(400):
                if stop.is_set():
                    return
                try:
                    answer = client.post("/invocations", json={"dataframe_records": rows})
                    out.append((answer.status_code, answer.headers.get("x-model-version"),
                                answer.headers.get("x-request-id"), answer.json()))
                except httpx.TransportError as error:
                    out.append((type(error).__name__, None, None, None))

    try:
        server.wait_ready()
        loops = [threading.Thread(target=load, args=(out,)) for out in results]
        promote_under_load(archive, loops, stop, results, seen_by=all, seconds=20)
        calls = model_calls(server)
    finally:
        assert server.stop() == 0
    for out in results:
        assert out and all(status == 200 for status, *_ in out), [r[:2] for r in out if r[0] != 200][:3]
        versions = [int(version) for _, version, _, _ in out]
        assert versions == sorted(versions) and versions[-1] == 2
    logged = read_log(log_folder(archive.root, "edtech")).set_index("request_id")
    by_version = {}
    for out in results:
        for _, version, request_id, body in out:
            assert logged.loc[request_id, "model_version"] == int(version)  # the header, the log and the model agree
            by_version.setdefault(version, set()).add(tuple(body["predictions"]))
    assert all(len(answers) == 1 for answers in by_version.values())  # same rows, same version: same answer
    assert by_version["1"] != by_version["2"]
    assert calls < sum(len(out) for out in results)  # the load was batched
