"""A model outside the EdTech example: logged with mlkit.log_model, registered by artifact, served without a
pseudonym key against its inferred signature (422, every failure, no value echoed), a scoring error a logged 500;
the same model saved twice is one sha256."""

import functools
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlkit.prediction_log import log_folder, read_log
from mlkit.pseudonyms import PSEUDONYM_KEY_ENV
from mlkit.serving import create_app

TRAIN = """import mlkit
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X = X[["mean radius", "mean texture"]]
model = LogisticRegression(max_iter=500).fit(X, y)
mlkit.log_metric('accuracy', model.score(X, y))
mlkit.log_model(model, "bc", signature=X)"""


@pytest.fixture
def served_bc(project, monkeypatch):
    """The breast-cancer model trained, logged and registered as `bc` v1: (project, run id)."""
    project.job("train_bc", None, TRAIN)
    run = project.run_json("train_bc", check=0)
    assert "artifacts/bc.signature.json" in [a["path"] for a in run["artifacts"]]
    project.mlkit("models", "register", "bc", "--run", run["id"], "--artifact", "bc.skops", check=0)
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    return project, run["id"]


def test_model_without_identifiers_serves_without_a_key_checks_its_signature_and_reproduces(served_bc, monkeypatch):
    project, run_id = served_bc
    with TestClient(create_app("bc:1", archive=project.archive, plugins=[])) as client:
        good = client.post("/invocations", json={"dataframe_records": [{"mean radius": 14.0, "mean texture": 19.0}]})
        assert good.status_code == 200 and 0 <= good.json()["predictions"][0] <= 1
        bad = client.post("/invocations", json={"dataframe_records": [
            {"mean radius": "abc", "mean texture": 19.0}, {"mean radius": 12.0, "notes": "p-1"}]})
    assert bad.status_code == 422 and "abc" not in bad.text and "p-1" not in bad.text and "notes" not in bad.text
    failures = {(f["column"], f["check"]) for f in bad.json()["error"]["failures"]}
    assert {("mean radius", "dtype float"), ("mean texture", "required column missing"),
            (None, "1 unexpected column names (not listed)")} <= failures
    logged = read_log(log_folder(project.archive, "bc"))
    assert list(logged["status"]) == [200, 422]

    # An unexpected error while scoring: a 500 naming the request id, no traceback, in the log.
    app = create_app("bc:1", archive=project.archive, plugins=[])

    def broken(frame):
        raise RuntimeError("secret internals /srv/model.py line 3")

    monkeypatch.setattr(app.state.mlkit.holder.current, "predict", broken)
    with TestClient(app) as client:
        response = client.post("/invocations", json={"dataframe_records": [{"mean radius": 14.0, "mean texture": 19.0}]})
    assert response.status_code == 500 and "secret internals" not in response.text and "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    assert request_id in response.json()["error"]["message"]
    logged = read_log(log_folder(project.archive, "bc"))
    assert list(zip(logged["request_id"], logged["status"], strict=True))[-1] == (request_id, 500)

    # The job saved a model: its reproduction has the same model file (one sha256).
    result = project.mlkit("reproduce", run_id, check=0)
    assert f"reproduced: run {run_id} -> new run" in result.stdout and "NOT reproduced" not in result.stdout


TEXT_LABELS = TRAIN.replace("X = X[", "y = y.map({0: 'malignant', 1: 'benign'})  # a classifier of text labels\nX = X[")


def test_feedback_for_a_classifier_of_text_labels_is_kept_as_the_position_of_its_class(project, monkeypatch):
    project.job("train_text", None, TEXT_LABELS)
    run = project.run_json("train_text", check=0)
    project.mlkit("models", "register", run["id"], "--artifact", "bc", "--name", "labels", check=0)
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    with TestClient(create_app("labels:1", archive=project.archive, plugins=[])) as client:
        scored = client.post("/invocations", json={"dataframe_records": [{"mean radius": 20.0, "mean texture": 25.0}]})
        assert scored.status_code == 200 and scored.json()["predictions"][0] > 0.5  # P(classes_[1] = malignant)
        request_id = scored.headers["x-request-id"]
        given = client.post("/feedback", json={"feedback": [{"request_id": request_id, "outcome": "malignant"}]})
        assert given.status_code == 200, given.text
        wrong = client.post("/feedback", json={"feedback": [{"request_id": request_id, "outcome": "maybe-secret"}]})
        assert wrong.status_code == 422 and "maybe-secret" not in wrong.text
        assert "classes ['benign', 'malignant'] (or its position, 0 to 1)" in wrong.text
    assert list(read_log(log_folder(project.archive, "labels", "feedback")).outcome) == [1.0]


SAVE = """import sys
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from mlkit.models import save_model
X = np.random.default_rng(0).normal(size=(60, 3))
model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
print(save_model(model, sys.argv[1])["sha256"])"""


def test_the_same_model_saved_twice_has_one_sha256(tmp_path):
    sha = [subprocess.run([sys.executable, "-c", SAVE, str(tmp_path / f"{n}.skops")], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONHASHSEED": str(n)}).stdout.strip() for n in (1, 2)]
    assert sha[0] == sha[1] and len(sha[0]) == 64
    assert json.loads((tmp_path / "1.json").read_text())["sha256"] == sha[0]



def test_a_scoring_error_inside_a_batch_fails_only_its_own_request(served_bc, monkeypatch):
    project, _ = served_bc
    app = create_app("bc:1", archive=project.archive, plugins=[])
    served, scorer = app.state.mlkit.holder.current, app.state.mlkit.scorer
    predict, gate, calls, failed_calls = served.predict, threading.Event(), [], []

    def fails_on_99(frame):
        calls.append(len(frame))
        assert gate.wait(30)  # held until the test has lined requests up
        if (frame["mean radius"] == 99.0).any():
            failed_calls.append(len(frame))
            raise RuntimeError("secret internals")
        return predict(frame)

    def until(condition):
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert condition()

    monkeypatch.setattr(served, "predict", fails_on_99)
    bodies = [{"dataframe_records": [{"mean radius": 10.0 + i, "mean texture": 19.0}] * (1 + i % 2)} for i in range(5)]
    bodies.insert(2, {"dataframe_records": [{"mean radius": 99.0, "mean texture": 19.0}]})
    with TestClient(app) as client, ThreadPoolExecutor(len(bodies)) as pool:
        post = functools.partial(client.post, "/invocations")
        futures = [pool.submit(post, json=bodies[0])]  # scored alone: the server was idle
        until(lambda: len(calls) == 1)
        futures.append(pool.submit(post, json=bodies[1]))  # the first batch, held
        until(lambda: len(calls) == 2)
        futures += [pool.submit(post, json=body) for body in bodies[2:]]
        until(lambda: len(scorer.pending) == 4)  # the failing request and three others wait for one batch
        gate.set()
        answers = [future.result() for future in futures]
    assert failed_calls == [5, 1]  # the batch of four (5 rows) failed, then each of them was scored alone
    assert [answer.status_code for answer in answers] == [200, 200, 500, 200, 200, 200]
    failed = answers[2]
    assert failed.headers["x-request-id"] in failed.json()["error"]["message"] and "secret" not in failed.text
    for body, answer in zip(bodies, answers, strict=True):
        if answer.status_code == 200:  # the same predictions as the request scored alone
            alone = predict(pd.DataFrame(body["dataframe_records"]))
            assert answer.json()["predictions"] == pytest.approx(list(alone), abs=1e-12)
    logged = read_log(log_folder(project.archive, "bc"))
    assert sorted(logged["status"]) == [200] * 5 + [500]
    assert failed.headers["x-request-id"] in set(logged["request_id"][logged["status"] == 500])


TRAIN_FROM_TABLE = """import mlkit, pandas as pd
from sklearn.linear_model import LogisticRegression
table = pd.read_csv(mlkit.log_input(mlkit.project_path("data/bc.csv")))
X = table[["mean radius", "mean texture"]]
mlkit.log_model(LogisticRegression(max_iter=500).fit(X, table["target"]), "bc")  # no signature given"""


@pytest.mark.parametrize("extra_column", [None, "patient_id"])
def test_a_signature_is_inferred_at_registration_from_the_training_table(project, monkeypatch, extra_column):
    from sklearn.datasets import load_breast_cancer
    table = load_breast_cancer(as_frame=True).frame[["mean radius", "mean texture", "target"]].head(200)
    if extra_column:  # the data named people, though the model does not use the column
        table.insert(0, extra_column, [f"p{i}" for i in range(len(table))])
    (project.root / "data").mkdir(exist_ok=True)
    table.to_csv(project.root / "data" / "bc.csv", index=False)
    project.job("train_bc", None, TRAIN_FROM_TABLE)
    run = project.run_json("train_bc", check=0)
    assert "artifacts/bc.signature.json" not in [a["path"] for a in run["artifacts"]]
    project.mlkit("models", "register", run["id"], "--artifact", "bc", "--name", "bc", check=0)
    shown = json.loads(project.mlkit("models", "show", "bc:1", check=0).stdout)
    assert shown["contract"]["from"].endswith("bc.csv") and shown["contract"]["identifiers"] == (
        [extra_column] if extra_column else [])
    assert [c["dtype"] for c in shown["contract"]["signature"]["columns"]] == ["float", "float"]
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    if extra_column:  # its lineage named people: no key, no serving
        with pytest.raises(Exception, match="set MLKIT_PSEUDONYM_KEY"):
            create_app("bc:1", archive=project.archive, plugins=[])
        return
    with TestClient(create_app("bc:1", archive=project.archive, plugins=[])) as client:
        bad = client.post("/invocations", json={"dataframe_records": [{"mean radius": "abc", "mean texture": 19.0}]})
        good = client.post("/invocations", json={"dataframe_records": [{"mean radius": 14.0, "mean texture": 19.0}]})
    assert bad.status_code == 422 and "abc" not in bad.text and good.status_code == 200


def test_a_version_claimed_on_a_remote_carries_the_same_signature(served_bc, tmp_path):
    project, run_id = served_bc
    (tmp_path / "share").mkdir()
    project.mlkit("remote", "add", "share", f"file://{tmp_path / 'share'}", check=0)
    project.mlkit("models", "register", run_id, "--artifact", "bc", "--name", "team_bc", "--remote", "share", check=0)
    local = json.loads(project.mlkit("models", "show", "bc:1", check=0).stdout)["contract"]
    mirrored = json.loads(project.mlkit("models", "show", "team_bc:1", check=0).stdout)["contract"]
    assert mirrored == local and mirrored["from"] == "mlkit.log_model" and mirrored["identifiers"] == []
