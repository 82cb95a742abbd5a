"""Model registry, drift monitoring and pipelines, end to end with real kernels."""

import json
import os
import shutil

import pytest
from conftest import TEST_PSEUDONYM_KEY
from test_edtech import mlkit, run_json, values

SMALL = {"n_students": 400}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return tmp_path_factory.mktemp("loop")


@pytest.fixture(scope="module")
def two_models(archive):
    first = run_json("train", "-p", "n_students", 400, "-p", "data_seed", 1, "--archive", archive)
    second = run_json("train", "-p", "n_students", 400, "-p", "data_seed", 2, "--archive", archive)
    return first, second


def test_registry_versions_aliases_history_rollback(archive, two_models):
    first, second = two_models
    assert "v1" in mlkit("models", "register", "edtech", "--run", first["id"], "--archive", archive).stdout
    assert "v2" in mlkit("models", "register", "edtech", "--run", second["id"][:-2], "--archive", archive).stdout
    mlkit("models", "promote", "edtech", 1, "--archive", archive)
    mlkit("models", "promote", "edtech", 2, "--reason", "better", "--archive", archive)
    mlkit("models", "promote", "edtech", 1, "--alias", "challenger", "--archive", archive)
    listed = json.loads(mlkit("models", "list", "--json", "--archive", archive).stdout)
    assert [(m["version"], m["aliases"]) for m in listed] == [(1, "challenger"), (2, "champion")]
    assert "v2 -> v1" in mlkit("models", "rollback", "edtech", "--archive", archive).stdout
    shown = json.loads(mlkit("models", "show", "edtech@champion", "--archive", archive).stdout)
    assert shown["version"] == 1 and shown["run_id"] == first["id"]
    assert "no earlier version" in mlkit("models", "rollback", "edtech", "--archive", archive, check=2).stderr
    events = json.loads(mlkit("models", "history", "edtech", "--alias", "champion", "--json", "--archive",
                              archive).stdout)
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in events] == [
        (None, 1, "manual"), (1, 2, "better"), (2, 1, "rollback")]
    assert "no version 7" in mlkit("models", "promote", "edtech", 7, "--archive", archive, check=2).stderr
    listing = mlkit("models", "list", "--archive", archive).stdout
    for suffix in ("", "-wal", "-shm"):  # rebuilding the index must not lose the registry
        (archive / f"index.sqlite{suffix}").unlink(missing_ok=True)
    mlkit("runs", "reindex", "--archive", archive)
    assert mlkit("models", "list", "--archive", archive).stdout == listing
    assert len(json.loads(mlkit("models", "history", "edtech", "--json", "--archive", archive).stdout)) == 4
    evaluated = run_json("evaluate", "-p", "model_run", "edtech:2", "-p", "baseline_run", "edtech@champion",
                         "--archive", archive)
    assert evaluated["upstream"] == [second["id"], first["id"]]


def test_tampered_registered_model_is_refused(archive, two_models):
    from mlkit.archive import Archive
    from mlkit.models import IntegrityError
    from mlkit.registry import Registry, load
    registry = Registry(Archive(archive))
    if "edtech" not in registry.names():  # the registry test ran on another xdist worker (its own archive)
        registry.register("edtech", registry.archive.get_run(two_models[0]["id"]))
    assert load(registry, "edtech:1").predict_proba is not None
    model_file = os.path.join(two_models[0]["path"], "artifacts", "model.skops")
    saved = model_file + ".saved"
    shutil.copy(model_file, saved)
    shutil.copy(os.path.join(two_models[1]["path"], "artifacts", "model.skops"), model_file)  # swapped
    try:
        with pytest.raises(IntegrityError, match="does not match"):
            load(registry, "edtech:1")
    finally:
        shutil.move(saved, model_file)


def test_drift_no_false_alarm_and_detection():
    from mlkit.edtech.data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, generate
    from mlkit.edtech.privacy import ingest
    from mlkit.drift import dataset_drift, drift_report
    reference = ingest(generate(1000, seed=0), generated=True)
    same = ingest(generate(3650, seed=21), generated=True)
    drifted = ingest(generate(3650, seed=22, drift=1.0), generated=True)
    assert len(same) >= 20000 and len(drifted) >= 20000
    quiet = drift_report(reference, same, NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert not quiet.drifted.any(), quiet
    assert not dataset_drift(quiet)["drifted"]
    loud = dataset_drift(drift_report(reference, drifted, NUMERIC_FEATURES, CATEGORICAL_FEATURES))
    assert loud["drifted"] and {"video_minutes", "avg_quiz_score"} <= set(loud["features"])


LOOP = """
name: small
model_name: edtech
services:
  - {name: server, command: serve, ref: "edtech@champion", after: promote_s1}
stages:
  - {name: ingest_s1, job: ingest, params: {n_students: 400, seed: 0}}
  - {name: check_s1, job: check, upstream: {data_run: ingest_s1}}
  - {name: train_s1, job: train, upstream: {data_run: ingest_s1}, after: [check_s1]}
  - {name: evaluate_s1, job: evaluate, upstream: {model_run: train_s1}, params: {baseline_run: "edtech@champion"}}
  - {name: promote_s1, job: promote, upstream: {model_run: train_s1, evaluation_run: evaluate_s1}}
  - {name: ingest_s2, job: ingest, params: {n_students: 1000, seed: 1, drift: 1.0}}
  - {name: replay_s2, job: replay, upstream: {data_run: ingest_s2}, urls: {server_url: server},
     params: {rows: 600, expect_ref: "edtech@champion"}}
  - {name: monitor_s2, job: monitor, after: [replay_s2],
     params: {model_ref: "edtech@champion", batch_source: serving, serving_model: edtech, serving_last: 12}}
  - {name: retrain_s2, job: train, upstream: {data_run: ingest_s2}, when: {stage: monitor_s2, alert: drift}}
  - {name: evaluate_s2, job: evaluate, upstream: {model_run: retrain_s2}, params: {baseline_run: "edtech@champion"}}
  - {name: promote_s2, job: promote, upstream: {model_run: retrain_s2, evaluation_run: evaluate_s2}}
  - {name: check_served, job: replay, upstream: {data_run: ingest_s2}, urls: {server_url: server}, after: [promote_s2],
     params: {rows: 50, malformed: 0, send_feedback: false, expect_ref: "edtech@champion"}}
"""


def _pipeline(tmp_path, text, archive, check=0, env=None):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return mlkit("pipeline", "run", "--file", path, "--archive", archive, "--json", check=check, env=env)


def _stages(result) -> dict:
    return {s["stage"]: s for s in json.loads(result.stdout)["stages"]}


def test_pipeline_closes_the_loop_with_cache_and_lineage(tmp_path):
    archive = tmp_path / "archive"
    first = _pipeline(tmp_path, LOOP, archive)
    stages = _stages(first)
    assert all(s["status"] == "succeeded" for s in stages.values()), stages
    assert json.loads(first.stdout)["champion"] == 2
    assert "drift" in stages["monitor_s2"]["note"]
    show = lambda run_id: json.loads(mlkit("runs", "show", run_id, "--json", "--archive", archive).stdout)  # noqa: E731
    logged = lambda stage: values(show(stages[stage]["run_id"]))  # noqa: E731
    # through the server: the replay was answered by v1, the monitor read the served rows, the server reloaded v2
    assert logged("replay_s2")["versions_seen"] == {"1": 12}, logged("replay_s2")
    assert show(stages["replay_s2"]["run_id"])["metrics"]["rejected"] == 5
    assert logged("monitor_s2")["serving_window"]["rows"] == 600
    assert logged("monitor_s2")["serving_window"]["with_outcome"] == 600
    assert logged("check_served")["served_version"]["seen"] == 2 and logged("check_served")["versions_seen"] == {"2": 1}
    [server] = json.loads(open(json.loads(first.stdout)["record"]).read())["services"]
    assert server["exit_code"] == 0 and server["stopped_at"]
    with pytest.raises(ProcessLookupError):  # stopped by its pid when the pipeline ended
        os.kill(server["pid"], 0)
    assert show(stages["train_s1"]["run_id"])["upstream"] == [stages["ingest_s1"]["run_id"], stages["check_s1"]["run_id"]]
    assert stages["retrain_s2"]["run_id"] != stages["train_s1"]["run_id"]
    assert stages["ingest_s2"]["run_id"] in show(stages["retrain_s2"]["run_id"])["upstream"]
    promote = show(stages["promote_s2"]["run_id"])
    assert {stages["retrain_s2"]["run_id"], stages["evaluate_s2"]["run_id"]} <= set(promote["upstream"])
    registered = json.loads(mlkit("models", "show", "edtech@champion", "--archive", archive).stdout)
    assert registered["run_id"] == stages["retrain_s2"]["run_id"] and registered["contract"]["sha256"]
    again = _stages(_pipeline(tmp_path, LOOP, archive))
    for name in ("ingest_s1", "check_s1", "train_s1", "ingest_s2"):
        assert again[name]["cached"] and again[name]["run_id"] == stages[name]["run_id"], name
    assert not again["promote_s1"]["cached"]
    # evaluate_s1 ran before any champion existed: it must be judged again now that there is one
    assert not again["evaluate_s1"]["cached"]
    assert show(stages["evaluate_s1"]["run_id"])["uncacheable"] == ["edtech@champion did not resolve"]
    status = mlkit("pipeline", "status", "--archive", archive).stdout
    assert "pipeline small" in status and "champion=v2" in status


BLOCKED = """
name: blocked
model_name: edtech
stages:
  - {name: ingest, job: ingest, params: {n_students: 400, seed: 3}}
  - {name: train, job: train, upstream: {data_run: ingest}}
  - {name: evaluate, job: evaluate, upstream: {model_run: train}, params: {baseline_run: "edtech@champion"}}
  - {name: promote, job: promote, upstream: {model_run: train, evaluation_run: evaluate}}
  - {name: train_dummy, job: train, upstream: {data_run: ingest}, after: [promote], params: {model: dummy}}
  - {name: evaluate_dummy, job: evaluate, upstream: {model_run: train_dummy}, params: {baseline_run: "edtech@champion"}}
  - {name: promote_dummy, job: promote, upstream: {model_run: train_dummy, evaluation_run: evaluate_dummy}}
"""


def test_blocked_gate_keeps_the_champion(tmp_path):
    result = _pipeline(tmp_path, BLOCKED, tmp_path / "archive")
    stages = _stages(result)
    assert json.loads(result.stdout)["champion"] == 1
    assert stages["evaluate_dummy"]["note"].startswith("gate blocked")
    assert "not promoted" in stages["promote_dummy"]["note"] and "champion stays v1" in stages["promote_dummy"]["note"]


def test_failing_stage_stops_the_pipeline(tmp_path):
    mlkit("data", "generate", "--out", tmp_path / "bad", "--students", 100, "--faults", "duplicate_keys")
    text = ("stages:\n  - {name: ingest, job: ingest, params: {source_path: '%s'}}\n"
            "  - {name: check, job: check, upstream: {data_run: ingest}}\n"
            "  - {name: train, job: train, upstream: {data_run: ingest}, after: [check]}\n") % (tmp_path / "bad" / "attempts.csv")
    stages = _stages(_pipeline(tmp_path, text, tmp_path / "archive", check=1, env=TEST_PSEUDONYM_KEY))
    assert stages["check"]["status"] == "failed" and "ContractViolation" in stages["check"]["note"]
    assert "train" not in stages
    plain = mlkit("pipeline", "run", "--file", tmp_path / "pipeline.yaml", "--archive", tmp_path / "archive", check=1,
                  env=TEST_PSEUDONYM_KEY)
    assert "pipeline stopped: stage check failed" in plain.stderr
    (tmp_path / "broken.yaml").write_text("stages:\n  - {name: a, job: nonexistent}\n")
    assert "unknown job" in mlkit("pipeline", "run", "--file", tmp_path / "broken.yaml", check=2).stderr


def test_monitor_survives_a_batch_missing_a_column(tmp_path, archive, two_models):
    import pandas as pd
    mlkit("data", "generate", "--out", tmp_path, "--students", 150, "--seed", 4)
    frame = pd.read_csv(tmp_path / "attempts.csv").drop(columns=["device"])
    frame.to_csv(tmp_path / "attempts.csv", index=False)
    batch = run_json("ingest", "-p", "source_path", tmp_path / "attempts.csv", "--archive", archive,
                     env=TEST_PSEUDONYM_KEY)
    monitored = run_json("monitor", "-p", "model_ref", two_models[0]["id"], "-p", "batch_run", batch["id"],
                         "--archive", archive)
    assert monitored["status"] == "succeeded"
    assert "contract" in {a["kind"] for a in monitored["alerts"]}
    report = pd.read_csv(os.path.join(monitored["path"], "artifacts", "drift_report.csv"))
    device = report[report.feature == "device"].iloc[0]
    assert bool(device.drifted) and "missing" in device.note
    assert values(monitored).get("prediction_drift") is None
    shown = values(monitored)["distributions"]  # for the report's drift page: every feature the batch still has
    assert "device" not in shown and len(shown["video_minutes"]["bins"]) == len(shown["video_minutes"]["current"])
    assert os.path.isfile(os.path.join(monitored["path"], "artifacts", "feature_distributions.png"))
