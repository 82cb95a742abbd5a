"""The serving application in-process (ASGI, via Starlette's TestClient): endpoints, refusals, log, reload, fuzzing."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlkit.archive import Archive, new_run_id
from mlkit.edtech.data import FEATURES, generate, make_catalog
from mlkit.edtech.models import build_model
from mlkit.edtech.privacy import ingest
from mlkit.errors import UsageError
from mlkit.fingerprint import file_record, sha256_file
from mlkit.models import save_model
from mlkit.prediction_log import log_folder, read_log
from mlkit.pseudonyms import PSEUDONYM_KEY_ENV
from mlkit.registry import Registry, promote
from mlkit.serving import create_app

REPO = Path(__file__).resolve().parent.parent
MLKIT = str(Path(sys.executable).with_name("mlkit"))
TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def archived_run(archive: Archive, job: str, params: dict, upstream=(), files=None, origin=None) -> str:
    "Archive a succeeded run of `job` as the runner would: params, upstream, artifacts, contract, data origin."
    run_id = new_run_id()
    staging = archive.stage(run_id)
    (staging / "artifacts").mkdir(parents=True, exist_ok=True)
    for name, write in (files or {}).items():
        write(staging / "artifacts" / name)
    contract = {"file": "contracts/attempts.yaml", "sha256": sha256_file(REPO / "contracts" / "attempts.yaml")}
    values = {"contract": contract, **({"data_origin": origin} if origin else {})}
    (staging / "values.json").write_text(json.dumps(values))
    records = [file_record(p, f"artifacts/{p.name}") for p in sorted((staging / "artifacts").iterdir())]
    archive.commit(staging, {"id": run_id, "job": job, "status": "succeeded", "params": params,
                             "upstream": list(upstream), "artifacts": records, "project": str(REPO),
                             "metrics": {"roc_auc": 0.7}})
    return run_id


def register_version(archive: Archive, seed: int, source_path=None) -> int:
    "Train a small EdTech model on generated data (ingest + train runs), register it; returns its version."
    attempts = ingest(generate(80, seed=seed), generated=True).assign(split="train")
    model = build_model("logistic_regression", {"C": 0.5 + seed}).fit(attempts[FEATURES], attempts["passed"])
    origin = "external" if source_path else "generated"  # as the ingest job records it
    ingest_run = archived_run(archive, "ingest", {"source_path": source_path}, origin=origin)
    train_run = archived_run(archive, "train", {"data_run": ingest_run, "data_path": None}, [ingest_run],
                             {"model.skops": lambda path: save_model(model, path),
                              "modules.csv": lambda path: make_catalog().to_csv(path, index=False),
                              "data.parquet": lambda path: attempts.to_parquet(path, index=False)},
                             origin="generated")
    return Registry(archive).register("edtech", archive.get_run(train_run)).version


def make_served_archive(root: Path, versions: int = 2) -> Archive:
    "An archive with `versions` registered EdTech models, `edtech@champion` on version 1."
    archive = Archive(root / "runs")
    for seed in range(versions):
        register_version(archive, seed)
    promote(Registry(archive), "edtech", 1)
    return archive


def tamper(archive: Archive, version: int):
    "Change the model file of `version` after registration."
    entry = Registry(archive).version("edtech", version)
    path = archive.get_run(entry.run_id).path / entry.artifact
    path.write_bytes(path.read_bytes() + b"tampered")


def attempts_rows(n_students: int = 2, seed: int = 11) -> list:
    "Raw attempts as an app has them (student ids, no names or e-mails), as JSON-ready dicts."
    raw = generate(n_students, seed=seed).drop(columns=["student_name", "student_email"])
    return json.loads(raw.to_json(orient="records"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_served_archive(tmp_path_factory.mktemp("serving"), versions=3)


@pytest.fixture
def client(archive, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-test-secret-0123456789")
    with TestClient(create_app("edtech@champion", archive=archive.root, token=TOKEN, max_body_bytes=50_000,
                               reload_interval=0.05)) as test_client:
        yield test_client
    promote(Registry(archive), "edtech", 1, reason="test reset")


def test_invocations_both_protocols_headers_and_log(client, archive):
    rows = attempts_rows()
    frame = pd.DataFrame(rows)[FEATURES]
    split = client.post("/invocations", json={"dataframe_split": frame.to_dict(orient="split", index=False)},
                        headers=AUTH)
    records = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    assert split.status_code == records.status_code == 200
    assert split.json()["predictions"] == pytest.approx(records.json()["predictions"])
    assert len(records.json()["predictions"]) == len(rows)
    assert all(0 <= p <= 1 for p in records.json()["predictions"])
    assert records.headers["x-model-version"] == "1"
    assert records.headers["x-request-id"] != split.headers["x-request-id"]
    logged = read_log(log_folder(archive.root, "edtech"))
    mine = logged[logged.request_id == records.headers["x-request-id"]].iloc[0]
    assert (mine["status"], mine["rows"], mine["model_version"]) == (200, len(rows), 1)
    assert json.loads(mine["outputs"]) == pytest.approx(records.json()["predictions"])
    assert mine["latency_ms"] > 0
    inputs = json.loads(mine["inputs"])
    assert inputs["avg_quiz_score"] == [row["avg_quiz_score"] for row in rows]  # logged as columns
    assert inputs["student_id"][0] != rows[0]["student_id"] and len(inputs["student_id"][0]) == 16


def test_raw_ids_never_reach_the_log(client, archive):
    rows = attempts_rows(seed=12)
    client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    client.post("/recommend", json={"attempts": rows[:3], "k": 2}, headers=AUTH)
    client.post("/feedback", json={"feedback": [{"attempt_id": rows[0]["attempt_id"], "outcome": 1}]}, headers=AUTH)
    folder = archive.root / "serving" / "edtech"
    text = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert rows[0]["student_id"].encode() not in text
    assert rows[0]["attempt_id"].encode() not in text


def test_contract_failures_listed_all_at_once_without_values(client):
    rows = attempts_rows(seed=13)[:4]
    rows[0]["avg_quiz_score"] = 130.5
    rows[1]["device"] = "smartwatch"
    rows[2]["student_email"] = "ada.lovelace@example.edu"
    rows[3]["tutor_notes"] = "call +1 555 010 4242"
    rows[3]["learning_style"] = "call +1 555 010 4242"
    del rows[3]["confidence"]
    answer = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    assert answer.status_code == 422
    failures = {(f["column"], f["check"]): f["rows"] for f in answer.json()["error"]["failures"]}
    assert failures[("avg_quiz_score", "max 100")] == [0]
    assert failures[("device", "allowed categories")] == [1]
    assert failures[("student_email", "forbidden column (direct identifier)")] == [2]
    assert failures[("learning_style", "PII pattern phone")] == [3]
    assert failures[(None, "1 unexpected column names (not listed)")] == [3]  # tutor_notes: counted, not named
    assert failures[("confidence", "required column missing")] == [3]
    rows[0]["module_id"] = "M99"  # an identifier the contract describes: checked against its categories
    answer = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    failures = {(f["column"], f["check"]): f["rows"] for f in answer.json()["error"]["failures"]}
    assert failures[("module_id", "allowed categories")] == [0]
    for value in ("130.5", "smartwatch", "ada.lovelace", "555 010", "M99", rows[0]["student_id"]):
        assert value not in answer.text
    assert answer.headers["x-model-version"] == "1"


def test_every_refusal_status(client):
    rows = attempts_rows()[:1]
    assert client.post("/invocations", json={"dataframe_records": rows}).status_code == 401
    wrong = client.post("/invocations", json={"dataframe_records": rows}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/version", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.post("/invocations", content=b'{"dataframe_records": [', headers=AUTH).status_code == 400
    assert client.post("/invocations", content=b"\xff\xfe", headers=AUTH).status_code == 400
    big = json.dumps({"dataframe_records": rows * 400}).encode()
    assert client.post("/invocations", content=big, headers=AUTH).status_code == 413
    chunked = client.post("/invocations", content=iter([big[:30_000], big[30_000:]]), headers=AUTH)
    assert chunked.status_code == 413
    assert client.post("/invocations", json={"instances": [[1, 2]]}, headers=AUTH).status_code == 422
    assert client.post("/invocations", json={"dataframe_records": []}, headers=AUTH).status_code == 422
    split = {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}
    assert client.post("/invocations", json=split, headers=AUTH).status_code == 422
    feedback = client.post("/feedback", json={"feedback": [{"attempt_id": "A1", "outcome": "S123-secret"}]},
                           headers=AUTH)
    assert feedback.status_code == 422 and "S123-secret" not in feedback.text
    assert client.post("/feedback", content=b"{", headers=AUTH).status_code == 400
    assert client.post("/feedback", json={"feedback": [{"outcome": 1}]}, headers=AUTH).status_code == 422
    assert client.post("/feedback", json={"feedback": [{"name": "x", "outcome": 1}]}, headers=AUTH).status_code == 422
    assert client.post("/recommend", json={"attempts": rows, "k": 0}, headers=AUTH).status_code == 422
    missing = client.get("/nothing", headers=AUTH)
    assert missing.status_code == 404 and missing.headers["x-model-version"] == "1"
    assert client.get("/invocations", headers=AUTH).status_code == 405


def test_feedback_recommend_version_metrics(client, archive):
    rows = attempts_rows(seed=14)
    answer = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    request_id = answer.headers["x-request-id"]
    given = client.post("/feedback", json={"feedback": [{"request_id": request_id, "row": 1, "outcome": 0},
                                                        {"attempt_id": rows[2]["attempt_id"], "outcome": 1}]},
                        headers=AUTH)
    assert given.json() == {"accepted": 2}
    feedback = read_log(log_folder(archive.root, "edtech", "feedback"))
    assert request_id in set(feedback.request_id)
    recommended = client.post("/recommend", json={"attempts": rows[:4], "k": 3}, headers=AUTH)
    assert recommended.status_code == 200
    modules = recommended.json()["recommendations"]
    assert len(modules) == 3 and [m["p_success"] for m in modules] == sorted(m["p_success"] for m in modules)[::-1]
    version = client.get("/version", headers=AUTH).json()
    entry = Registry(archive).version("edtech", 1)
    assert (version["name"], version["version"], version["sha256"], version["run_id"]) == (
        "edtech", 1, entry.sha256, entry.run_id)
    assert version["contract"]["file"] == "contracts/attempts.yaml"
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'mlkit_requests_total{endpoint="/invocations",status="200"}' in metrics
    assert "mlkit_request_seconds_bucket" in metrics
    assert 'mlkit_model_version{model="edtech"} 1.0' in metrics


def test_hot_reload_and_tampered_version_refused(client, archive):
    rows = attempts_rows()[:2]
    registry = Registry(archive)
    promote(registry, "edtech", 2)
    versions, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline and (not versions or versions[-1] != "2"):
        answer = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
        assert answer.status_code == 200
        versions.append(answer.headers["x-model-version"])
    assert versions[-1] == "2"
    tamper(archive, 3)
    promote(registry, "edtech", 3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not client.get("/version", headers=AUTH).json()["reloads"][-1].get(
            "outcome") == "refused":
        time.sleep(0.05)
    version = client.get("/version", headers=AUTH).json()
    assert version["version"] == 2
    assert version["reloads"][-1]["outcome"] == "refused" and "sha256" in version["reloads"][-1]["reason"]
    answer = client.post("/invocations", json={"dataframe_records": rows}, headers=AUTH)
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "2"
    assert 'mlkit_model_reloads_total{outcome="refused"} 1.0' in client.get("/metrics", headers=AUTH).text


def test_refuses_to_start_without_key_on_real_data(tmp_path, monkeypatch):
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    archive = Archive(tmp_path / "runs")
    register_version(archive, seed=0, source_path="exports/fall.csv")
    with pytest.raises(UsageError, match="set MLKIT_PSEUDONYM_KEY"):
        create_app("edtech:1", archive=archive.root)
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-real-secret-0123456789")
    assert create_app("edtech:1", archive=archive.root).state.mlkit.key == b"a-real-secret-0123456789"


def test_synthetic_model_serves_with_development_key(archive, monkeypatch):
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    with TestClient(create_app("edtech:1", archive=archive.root)) as test_client:
        assert test_client.get("/health/ready").json()["version"] == 1


def test_monitor_reads_a_serving_window(tmp_path, monkeypatch):
    """Drifted traffic through the app, outcomes as feedback; the monitor job (a real run) alerts on the window."""
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-test-secret-0123456789")
    archive = make_served_archive(tmp_path, versions=1)
    traffic = json.loads(generate(120, seed=21, drift=1.0).drop(columns=["student_name", "student_email"])
                         .to_json(orient="records"))
    with TestClient(create_app("edtech@champion", archive=archive.root)) as client:
        for start in range(0, len(traffic), 60):
            batch = traffic[start:start + 60]
            answer = client.post("/invocations", json={"dataframe_records": batch})
            assert answer.status_code == 200
            outcomes = [{"request_id": answer.headers["x-request-id"], "row": i, "outcome": row["passed"]}
                        for i, row in enumerate(batch)]
            assert client.post("/feedback", json={"feedback": outcomes}).status_code == 200
    env = {**os.environ, "MLKIT_ARCHIVE": str(archive.root)}
    result = subprocess.run([MLKIT, "run", "monitor", "-p", "model_ref", "edtech@champion", "-p", "batch_source",
                             "serving", "-p", "serving_model", "edtech", "-p", "serving_last", "1000", "--json"],
                            check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)
    assert "drift" in {alert["kind"] for alert in manifest["alerts"]}
    window = json.loads((Path(manifest["path"]) / "values.json").read_text())["serving_window"]
    assert window["rows"] == len(traffic) and window["with_outcome"] == len(traffic)
    assert "roc_auc_current" in manifest["metrics"]


def test_openapi_fuzzing(archive, monkeypatch):
    """Bounded schemathesis run over every documented operation: no 5xx, documented statuses and content types."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi import checks

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-test-secret-0123456789")
    app = create_app("edtech:1", archive=archive.root, max_body_bytes=50_000)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/invocations", "/feedback", "/recommend", "/version", "/metrics"}
    with TestClient(app):
        for operation in operations:

            @given(operation.as_strategy())
            @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def fuzz(case):
                case.call_and_validate(checks=[schemathesis.checks.not_a_server_error,
                                               checks.status_code_conformance, checks.content_type_conformance])

            fuzz()
