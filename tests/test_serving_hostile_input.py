"""The model server under hostile input: long strings, many or hostile names, oversized and deeply nested bodies."""

import json
import math
import socket
import threading
import time

import httpx
import pytest

from mlkit.cli import main
from mlkit.edtech.data import FEATURES
from mlkit.prediction_log import log_folder, read_log
from mlkit.pseudonyms import PSEUDONYM_KEY_ENV
from mlkit.scoring import MAX_COLUMNS

import test_serving_app
from test_serving_app import AUTH, attempts_rows
from test_serving_server import AUTH as SERVER_AUTH
from test_serving_server import Server

archive, client = test_serving_app.archive, test_serving_app.client  # the app's fixtures: a 50,000-byte body limit
LIMIT = 50_000
EMAIL = "ada.lovelace@example.edu"
PHONE = "+44 20 7946 0958"  # looked for as "7946 0958": four digits alone turn up in random request ids


def logged_text(archive) -> str:
    "Every byte of the model's prediction and feedback logs, as text."
    folder = archive.root / "serving" / "edtech"
    return b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file()).decode("utf-8", "replace")


def test_a_megabyte_string_is_refused_fast_while_health_answers(archive):
    server = Server(archive.root, extra=["--max-body-bytes", "3000000"])
    try:
        server.wait_ready()
        row = {**attempts_rows()[0], "learning_style": "a" * 1_000_000}  # quadratic for a backtracking e-mail regex
        answers, health = [], []

        def score():
            started = time.monotonic()
            try:
                answer = httpx.post(server.url + "/invocations", json={"dataframe_records": [row]}, headers=SERVER_AUTH,
                                    timeout=10)
                answers.append((answer.status_code, time.monotonic() - started, answer.text))
            except httpx.TimeoutException:
                answers.append(("timeout", time.monotonic() - started, ""))

        scoring = threading.Thread(target=score)
        scoring.start()
        for _ in range(40):  # bounded: 40 health checks, each with its own deadline
            started = time.monotonic()
            try:
                status = server.client.get("/health/live", timeout=2).status_code
            except httpx.TimeoutException:
                status = "timeout"
            health.append((status, time.monotonic() - started))
            if answers:
                break
            time.sleep(0.02)
        scoring.join(15)
    finally:
        server.stop()
    status, seconds, text = answers[0]
    # a backtracking pattern on 1 MB takes minutes; the margins leave room for a loaded CI machine
    assert status == 422 and seconds < 3.0, (status, seconds)
    assert "longer than 10000 characters" in text and "aaaa" not in text
    assert all(code == 200 and took < 1.5 for code, took in health), health


def test_many_distinct_names_are_counted_not_listed(client):
    rows = [{f"{i}.{EMAIL}": 1} for i in range(MAX_COLUMNS + 10)]
    started = time.monotonic()
    answer = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    assert answer.status_code == 422 and time.monotonic() - started < 2
    assert answer.json()["error"]["message"] == f"{MAX_COLUMNS + 10} distinct column names; at most {MAX_COLUMNS} per request"
    assert "example" not in answer.text
    split = client.post("/invocations", json={"dataframe_split": {"columns": [str(i) for i in range(2000)],
                                                                    "data": [[0] * 2000]}}, headers=AUTH)
    assert split.status_code == 422 and "2000 distinct column names" in split.text
    student = attempts_rows()[0]
    attempts = client.post("/recommend", json={"attempts": rows[:990] + [student] * 10}, headers=AUTH)
    assert attempts.status_code == 422 and f"{990 + len(student)} distinct column names" in attempts.text


@pytest.mark.parametrize("path", ["/invocations", "/feedback", "/recommend"])
def test_one_body_limit_for_every_route_chunked_or_not(client, path):
    big = {"feedback": [{"request_id": "r", "outcome": 1}] * 3_000} if path == "/feedback" else (
        {"attempts": attempts_rows() * 50} if path == "/recommend" else {"dataframe_records": attempts_rows() * 50})
    data = json.dumps(big).encode()
    assert len(data) > LIMIT

    def chunks():
        for start in range(0, len(data), 16_384):
            yield data[start:start + 16_384]

    streamed = client.post(path, content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    declared = client.post(path, content=data, headers={**AUTH, "Content-Type": "application/json"})
    assert (streamed.status_code, declared.status_code) == (413, 413)
    assert streamed.json()["error"]["message"] == f"the body is larger than {LIMIT} bytes"


@pytest.mark.parametrize("path", ["/invocations", "/feedback", "/recommend"])
def test_deeply_nested_json_is_a_400(client, path):
    answer = client.post(path, content=b"[" * 5_000 + b"]" * 5_000,
                         headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400


def test_recommend_names_the_missing_ranking_field(client):
    for field in ("passed", "module_id"):
        attempts = [{key: value for key, value in row.items() if key != field} for row in attempts_rows()[:3]]
        answer = client.post("/recommend", json={"attempts": attempts, "k": 2}, headers=AUTH)
        assert answer.status_code == 422, answer.text
        failures = answer.json()["error"]["failures"]
        assert {"column": field, "check": "required column missing", "rows": [0, 1, 2], "count": 3} in failures


def test_field_names_are_counted_never_echoed_or_logged(client, archive):
    rows = attempts_rows()[:2]
    for name in (EMAIL, EMAIL + "_id", PHONE):
        answer = client.post("/invocations", json={"dataframe_records": [{**row, name: 1} for row in rows]},
                             headers=AUTH)
        assert answer.status_code == 422
        assert answer.json()["error"]["failures"] == [{"column": None, "check": "1 unexpected column names (not listed)",
                                                      "rows": [0, 1], "count": 2}]
        assert "example" not in answer.text and "7946 0958" not in answer.text
        given = client.post("/feedback", json={"feedback": [{"attempt_id": "A1", name: "x", "outcome": 1}]},
                            headers=AUTH)
        assert given.status_code == 422 and "example" not in given.text and "7946 0958" not in given.text
    assert client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH).status_code == 200
    assert EMAIL not in logged_text(archive) and "7946 0958" not in logged_text(archive)


def test_duplicate_split_column_and_outcomes_that_are_no_label(client, archive):
    frame = [[row[name] for name in FEATURES] for row in attempts_rows()[:2]]
    twice = client.post("/invocations", json={"dataframe_split": {"columns": [*FEATURES, FEATURES[0]],
                                                                    "data": [[*r, r[0]] for r in frame]}}, headers=AUTH)
    assert twice.status_code == 422 and twice.json()["error"]["message"] == "1 column names given more than once"
    before = len(read_log(log_folder(archive.root, "edtech", "feedback")))
    for outcome in (b"NaN", b"Infinity", b"-Infinity", b"7", b"0.5"):
        given = client.post("/feedback", content=b'{"feedback": [{"attempt_id": "A1", "outcome": ' + outcome + b"}]}",
                            headers={**AUTH, "Content-Type": "application/json"})
        assert given.status_code == 422, (outcome, given.text)
    assert client.post("/feedback", json={"feedback": [{"attempt_id": "A1", "outcome": 1}]},
                       headers=AUTH).status_code == 200
    outcomes = list(read_log(log_folder(archive.root, "edtech", "feedback")).outcome)
    assert len(outcomes) == before + 1 and all(math.isfinite(o) and o in (0, 1) for o in outcomes)


def test_serve_on_a_taken_port_is_one_line_exit_1(archive, monkeypatch, capsys):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-test-secret-0123456789")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "edtech@champion", "--archive", str(archive.root), "--port", str(port)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip().splitlines() == [f"mlkit: error: cannot serve on 127.0.0.1:{port}: Address already in use"]
    assert "serving" not in captured.out + captured.err


@pytest.mark.parametrize("window", [["--since", "garbage"], ["--last", "-1"]])
def test_serving_log_window_is_checked(client, archive, window, capsys):
    client.post("/invocations", json={"dataframe_records": attempts_rows()[:1]}, headers=AUTH)
    capsys.readouterr()
    assert main(["serving", "log", "edtech", "--archive", str(archive.root), *window]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and window[0] in err
