"""The EdTech example end to end: data, contracts, train and evaluate jobs, the gate, recommendations."""

import json
import os
import subprocess

import pandas as pd
import pytest
from conftest import MLKIT, REPO, TEST_PSEUDONYM_KEY


def mlkit(*args, check=0, env=None):
    """Run `mlkit` in the repository (its jobs, params and contract)."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLKIT_ARCHIVE"}
    full_env.update(env or {})
    result = subprocess.run([MLKIT, *map(str, args)], cwd=REPO, env=full_env, text=True, capture_output=True,
                            timeout=600, check=False)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def run_json(*args, **kwargs) -> dict:
    return json.loads(mlkit("run", *args, "--json", **kwargs).stdout)


def values(manifest) -> dict:
    """The values a run logged ({} when it logged none)."""
    path = os.path.join(manifest["path"], "values.json")
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return tmp_path_factory.mktemp("archive")


@pytest.fixture(scope="module")
def trained(archive):
    """The default model, trained once for this module's tests."""
    return run_json("train", "--archive", archive)


def test_generator_is_deterministic(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        mlkit("data", "generate", "--out", tmp_path / name, "--students", 50, "--seed", seed)
    read = {name: (tmp_path / name / "attempts.csv").read_bytes() for name in "abc"}
    assert read["a"] == read["b"] and read["a"] != read["c"]
    drifted = mlkit("data", "generate", "--out", tmp_path / "d", "--students", 50, "--drift", "1", "--format",
                    "parquet")
    assert "attempts.parquet" in drifted.stdout
    assert "unknown faults" in mlkit("data", "generate", "--out", tmp_path / "e", "--faults", "gremlins",
                                     check=2).stderr


def test_every_fault_is_caught_in_one_report(tmp_path):
    mlkit("data", "generate", "--out", tmp_path, "--students", 120, "--seed", 2, "--faults",
          "nulls,out_of_range,unseen_categories,duplicate_keys,wrong_dtypes,pii")
    mlkit("data", "ingest", tmp_path / "attempts.csv", "--out", tmp_path / "safe.parquet", env=TEST_PSEUDONYM_KEY)
    result = mlkit("contract", "check", tmp_path / "safe.parquet", "--contract", "contracts/attempts.yaml",
                   "--json", check=1)
    found = {(f["column"], f["check"].split(" ")[0]) for f in json.loads(result.stdout)["failures"]}
    for expected in [("avg_quiz_score", "not"), ("learning_style", "not"), ("avg_quiz_score", "max"),
                     ("video_minutes", "min"), ("learning_style", "allowed"), ("device", "allowed"),
                     ("attempt_id", "unique"), ("confidence", "dtype"), ("tutor_notes", "unexpected"),
                     ("tutor_notes", "PII")]:
        assert expected in found, expected
    clean = tmp_path / "clean"
    mlkit("data", "generate", "--out", clean, "--students", 120, "--seed", 2)
    ingested = mlkit("data", "ingest", clean / "attempts.csv", "--out", clean / "safe.csv",
                     env=TEST_PSEUDONYM_KEY).stdout
    assert "pseudonymized attempts of 120 students" in ingested
    mlkit("contract", "check", clean / "safe.csv", "--contract", "contracts/attempts.yaml")
    assert "--out must differ" in mlkit("data", "ingest", clean / "safe.csv", "--out", clean / "safe.csv",
                                        check=2, env=TEST_PSEUDONYM_KEY).stderr
    raw = mlkit("contract", "check", clean / "attempts.csv", "--contract", "contracts/attempts.yaml", check=1)
    assert "student_email: forbidden column" in raw.stdout


def test_contracts_on_other_data(tmp_path):
    orders = pd.DataFrame({"order_id": range(1, 41), "amount": [float(i) for i in range(40)],
                           "country": ["FR", "DE"] * 20, "created": pd.date_range("2026-01-01", periods=40)})
    orders.to_parquet(tmp_path / "orders.parquet")
    mlkit("contract", "infer", tmp_path / "orders.parquet", "--out", tmp_path / "orders.yaml")
    mlkit("contract", "check", tmp_path / "orders.parquet", "--contract", tmp_path / "orders.yaml")
    broken = orders.drop(columns=["country"]).assign(amount=-5.0)
    broken.loc[3, "order_id"] = 1
    broken.to_csv(tmp_path / "broken.csv", index=False)
    report = json.loads(mlkit("contract", "check", tmp_path / "broken.csv", "--contract", tmp_path / "orders.yaml",
                              "--json", check=1).stdout)
    checks = {(f["column"], f["check"].split(" ")[0]) for f in report["failures"]}
    assert {("country", "required"), ("amount", "min"), ("order_id", "unique")} <= checks
    (tmp_path / "bad.yaml").write_text("columns: [1, 2]\n")
    assert "columns" in mlkit("contract", "check", tmp_path / "broken.csv", "--contract", tmp_path / "bad.yaml",
                              check=2).stderr
    (tmp_path / "junk.parquet").write_text("not parquet")
    mlkit("contract", "check", tmp_path / "junk.parquet", "--contract", tmp_path / "orders.yaml", check=2)


def test_train_job_logs_metrics_plots_and_a_verified_model(trained):
    assert trained["status"] == "succeeded"
    assert set(trained["metrics"]) == {"roc_auc", "accuracy", "log_loss", "brier"}
    assert trained["metrics"]["roc_auc"] >= 0.75
    artifacts = {a["path"]: a for a in trained["artifacts"]}
    for name in ("model.skops", "model.json", "roc_calibration.png", "feature_importance.png", "data.parquet"):
        assert f"artifacts/{name}" in artifacts, name
    model = values(trained)["model"]
    assert model["sha256"] == artifacts["artifacts/model.skops"]["sha256"] and model["sklearn_version"]
    stored = pd.read_parquet(os.path.join(trained["path"], "artifacts", "data.parquet"))
    assert not {"student_id", "student_name", "student_email"} & set(stored.columns)


def test_gate_passes_the_default_model_and_blocks_the_dummy(archive, trained):
    evaluated = run_json("evaluate", "-p", "model_run", trained["id"], "--archive", archive)
    gate = values(evaluated)["gate"]
    assert evaluated["status"] == "succeeded" and gate["verdict"] == "passed", gate["reasons"]
    assert evaluated["upstream"] == [trained["id"]]
    dummy = run_json("train", "-p", "model", "dummy", "--archive", archive)
    assert dummy["metrics"]["roc_auc"] == pytest.approx(0.5)
    blocked = run_json("evaluate", "-p", "model_run", dummy["id"], "-p", "baseline_run", trained["id"],
                       "--archive", archive)
    gate = values(blocked)["gate"]
    assert blocked["status"] == "succeeded" and gate["verdict"] == "blocked"
    failed = {c["name"] for c in gate["criteria"] if not c["passed"]}
    assert {"roc_auc floor", "roc_auc non-inferiority"} <= failed
    assert blocked["metrics"]["gate_passed"] == 0


def test_gate_blocks_a_model_trained_on_biased_data(archive):
    biased = run_json("train", "-p", "bias", "0.8", "--archive", archive)
    evaluated = run_json("evaluate", "-p", "model_run", biased["id"], "--archive", archive)
    gate = values(evaluated)["gate"]
    assert gate["verdict"] == "blocked"
    assert any(c["name"] == "demographic_parity_difference [first_generation]" and not c["passed"]
               for c in gate["criteria"])


def test_contract_failure_stops_training(archive, tmp_path):
    mlkit("data", "generate", "--out", tmp_path, "--students", 100, "--faults", "out_of_range,pii")
    result = mlkit("run", "train", "-p", "data_path", tmp_path / "attempts.csv", "--archive", archive, "--json",
                   check=1, env=TEST_PSEUDONYM_KEY)
    manifest = json.loads(result.stdout)
    assert manifest["error"]["ename"] == "ContractViolation"
    paths = {a["path"] for a in manifest["artifacts"]}
    assert "artifacts/contract_failures.csv" in paths and "artifacts/model.skops" not in paths
    assert {i["path"] for i in manifest["inputs"]} >= {str(tmp_path / "attempts.csv")}


def test_tampered_model_is_refused(archive, trained, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(trained["path"], copy)
    before = run_json("evaluate", "-p", "model_run", trained["id"], "--archive", archive)
    assert before["status"] == "succeeded"
    with open(os.path.join(trained["path"], "artifacts", "model.skops"), "ab") as handle:
        handle.write(b"tampered")
    try:
        # the model file is a declared input: the earlier evaluation is no cache hit, and loading is refused
        result = mlkit("run", "evaluate", "-p", "model_run", trained["id"], "--archive", archive, check=1)
        assert "IntegrityError" in result.stderr and "does not match" in result.stderr
    finally:
        shutil.copy(copy / "artifacts" / "model.skops", os.path.join(trained["path"], "artifacts", "model.skops"))


def test_recommend_ranks_eligible_modules(archive, trained):
    data = pd.read_parquet(os.path.join(trained["path"], "artifacts", "data.parquet"))
    key = data.student_key.iloc[0]
    result = json.loads(mlkit("recommend", "--run", trained["id"], "--student", key, "--k", 3, "--json",
                              "--archive", archive).stdout)
    passed = set(result["passed_modules"])
    catalog = pd.read_csv(os.path.join(trained["path"], "artifacts", "modules.csv"))
    requirements = {row.module_id: set(str(row.prerequisites).split(";")) - {"nan", ""} for row in catalog.itertuples()}
    chances = [r["p_success"] for r in result["recommendations"]]
    assert 1 <= len(chances) <= 3 and chances == sorted(chances, reverse=True)
    for recommendation in result["recommendations"]:
        assert recommendation["module_id"] not in passed and requirements[recommendation["module_id"]] <= passed
    raw_id = "S007-000001"  # the generator's raw id of the first student (seed 7), pseudonymized by the command
    assert mlkit("recommend", "--run", trained["id"], "--student", raw_id, "--archive", archive).returncode == 0
    assert "no attempts" in mlkit("recommend", "--run", trained["id"], "--student", "nobody", "--archive", archive,
                                  check=2).stderr
