"""A model is registered only if it could be loaded later (skops, trusted types
only; a pickle renamed model.skops is refused clearly), and a contract with values of the wrong type is a usage
error naming the key, while a contract key the data lacks fails the check."""

import json
import pickle

import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from mlkit.archive import Archive, new_run_id
from mlkit.fingerprint import file_record
from mlkit.registry import Registry, aliases, promote


class HomemadeModel(LogisticRegression):
    """A model class nobody declared trusted (skops records its import path in the file)."""


def run_with_model(archive: Archive, write) -> str:
    """Archive a succeeded train run whose artifacts/model.skops is written by `write(path)`; its id."""
    run_id = new_run_id()
    staging = archive.stage(run_id)
    model_file = staging / "artifacts" / "model.skops"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    write(model_file)
    archive.commit(staging, {"id": run_id, "job": "train", "status": "succeeded",
                             "artifacts": [file_record(model_file, "artifacts/model.skops")]})
    return run_id


def test_registration_refuses_models_that_could_not_be_loaded(project):
    archive = Archive(project.archive)
    fitted = HomemadeModel().fit([[0.0], [1.0], [0.2], [0.9]], [0, 1, 0, 1])
    untrusted = run_with_model(archive, lambda path: sio.dump(fitted, path))
    renamed_pickle = run_with_model(archive, lambda path: path.write_bytes(pickle.dumps(fitted)))

    refused = project.mlkit("models", "register", "edtech", "--run", untrusted, check=1)
    assert "needs untrusted types ['test_model_files.HomemadeModel']" in refused.stderr
    assert "trust_types" in refused.stderr and "Traceback" not in refused.stderr
    refused = project.mlkit("models", "register", "edtech", "--run", renamed_pickle, check=1)
    assert "not a skops model file (a pickle, which can run arbitrary code when loaded)" in refused.stderr
    assert "BadZipFile" not in refused.stderr and "Traceback" not in refused.stderr
    assert project.mlkit("models", "list", check=0).stdout.strip() == "no models"


def test_promote_refuses_a_version_whose_model_file_was_tampered_with(project):
    archive = Archive(project.archive)
    fitted = LogisticRegression().fit([[0.0], [1.0], [0.2], [0.9]], [0, 1, 0, 1])
    registry = Registry(archive)
    for _ in range(2):
        run_id = run_with_model(archive, lambda path: sio.dump(fitted, path))
        registry.register("edtech", archive.get_run(run_id))
    promote(registry, "edtech", 1)
    model_file = archive.get_run(run_id).path / "artifacts" / "model.skops"
    model_file.chmod(0o644)
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    refused = project.mlkit("models", "promote", "edtech", "2", check=1)
    assert "edtech:2 was not promoted: its model file" in refused.stderr and str(model_file) in refused.stderr
    assert "Traceback" not in refused.stderr
    assert aliases(registry, "edtech") == {"champion": 1}  # the alias did not move


CONTRACT = """contract: orders
row_count: {min: 1, max: 100}
key: [order_id]
columns:
  order_id: {dtype: integer, required: true, nullable: false}
  amount: {dtype: float, min: 0, max: 1000}
forbidden_patterns: {email: '[a-z]+@[a-z]+'}
"""


def test_contract_values_of_the_wrong_type_are_usage_errors(project):
    data = project.root / "orders.csv"
    pd.DataFrame({"order_id": [1, 2, 3], "amount": [10.0, 20.0, 30.0]}).to_csv(data, index=False)
    contract = project.root / "orders.yaml"
    contract.write_text(CONTRACT)
    project.mlkit("contract", "check", data, "--contract", contract, check=0)
    broken = {"row_count: {min: 1, max: 100}": ("row_count: {min: fifty, max: 100}", "row_count.min must be a number"),
              "amount: {dtype: float, min: 0, max: 1000}": ("amount: {dtype: float, min: 0, max: [lots]}",
                                                              "columns.amount.max must be a number"),
              "'[a-z]+@[a-z]+'": ("'[a-z+@('", "forbidden_patterns.email must be a valid regular expression")}
    for right, (wrong, message) in broken.items():
        contract.write_text(CONTRACT.replace(right, wrong))
        result = project.mlkit("contract", "check", data, "--contract", contract, check=2)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr

    contract.write_text(CONTRACT.replace("key: [order_id]", "key: [order_number]"))
    failed = project.mlkit("contract", "check", data, "--contract", contract, "--json", check=1)
    failures = json.loads(failed.stdout)["failures"]
    assert {"column": "order_number", "check": "key column missing", "failing": 3, "examples": []} in failures
