"""Every name that becomes a path is checked in one place (mlkit.names), and real student data
needs a real pseudonym key (the development key serves only data mlkit generated itself)."""

import hashlib
import json
import os
import shutil
import subprocess

from conftest import MLKIT, REPO

KEY = "MLKIT_PSEUDONYM_KEY"


def mlkit_with_key(project, *args, key=None, check=None):
    """`mlkit` in the project with `MLKIT_PSEUDONYM_KEY` set to `key` (None: not set at all)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLKIT_ARCHIVE", KEY)}
    if key is not None:
        env[KEY] = key
    result = subprocess.run([MLKIT, *map(str, args)], cwd=project.root, env=env, text=True, capture_output=True,
                            timeout=300, check=False)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def files_named(root, *names):
    return sorted(str(p) for name in names for p in root.rglob(name))


LOG_CALLS = """import mlkit
messages = []
calls = [lambda: mlkit.log_value("../v", 1), lambda: mlkit.log_table("../../t", None),
         lambda: mlkit.log_figure("../f", None), lambda: mlkit.log_artifact(source, "../../a")]
for call in calls:
    try:
        call()
    except ValueError as error:
        messages.append(str(error))
mlkit.log_value("messages", messages)
"""


def test_names_that_become_paths_are_checked(project, tmp_path):
    source = tmp_path / "f.txt"
    source.write_text("x")
    project.job("logs", f"source = {str(source)!r}", LOG_CALLS)
    run = project.run_json("logs", check=0)
    messages = json.loads((project.archive / "logs" / run["id"] / "values.json").read_text())["messages"]
    kinds = ["value name '../v'", "table name '../../t'", "figure name '../f'", "artifact name '../../a'"]
    assert [any(f"invalid {kind}" in m for m in messages) for kind in kinds] == [True] * 4, messages
    assert files_named(tmp_path, "v", "t.csv", "f.png", "a") == []  # escapes would land in the archive or beside it
    project.job(".hidden")
    assert "invalid job name '.hidden'" in project.mlkit("run", project.root / "jobs" / ".hidden.ipynb", check=2).stderr
    refused = project.mlkit("models", "register", "../../models", "--run", run["id"], check=2).stderr
    assert "invalid model name '../../models'" in refused and "Traceback" not in refused
    assert not (project.root / "models").exists() and not (project.archive / "models").exists()


def test_pipeline_name_cannot_escape_the_archive(project):
    project.job("nap", "seconds: float = 0.0", "import mlkit\nmlkit.log_metric('slept', seconds)")
    (project.root / "params" / "pipeline.yaml").write_text(
        "name: ../../../escaped\nstages:\n  - {name: first, job: nap}\n")
    before = files_named(project.root.parent.parent, "escaped*")
    result = project.mlkit("pipeline", "run", check=2)
    assert "invalid pipeline name '../../../escaped'" in result.stderr and "Traceback" not in result.stderr
    assert files_named(project.root.parent.parent, "escaped*") == before
    assert project.run_folders() == []
    (project.root / "params" / "pipeline.yaml").write_text("stages:\n  - {name: ../up, job: nap}\n")
    assert "invalid stage name '../up'" in project.mlkit("pipeline", "run", check=2).stderr
    assert "invalid pipeline name '*'" in project.mlkit("pipeline", "status", "--name", "*", check=2).stderr


def test_real_data_needs_a_real_key(project, tmp_path):
    from mlkit.archive import Archive
    from mlkit.edtech.data import generate
    from mlkit.registry import data_generated_by_mlkit
    shutil.copy(REPO / "nbs" / "jobs" / "ingest.ipynb", project.root / "jobs" / "ingest.ipynb")
    export = tmp_path / "export.csv"
    generate(30, seed=5).to_csv(export, index=False)

    no_key = mlkit_with_key(project, "data", "ingest", tmp_path / "missing.csv", "--out", tmp_path / "s.csv", check=2)
    assert "real student data needs a secret pseudonym key: set MLKIT_PSEUDONYM_KEY" in no_key.stderr
    assert "secrets.token_hex(32)" in no_key.stderr and "no data file" not in no_key.stderr
    short = mlkit_with_key(project, "data", "ingest", export, "--out", tmp_path / "s.csv", key="short-key", check=2)
    assert "MLKIT_PSEUDONYM_KEY is 9 bytes; use at least 16" in short.stderr and not (tmp_path / "s.csv").exists()

    refused = mlkit_with_key(project, "run", "ingest", "-p", "source_path", tmp_path / "missing.csv", check=1)
    assert "UsageError: real student data needs a secret pseudonym key" in refused.stderr
    assert "FileNotFoundError" not in refused.stderr, "refused before reading the file"
    store = Archive(project.archive)
    assert [run.manifest.get("artifacts") for run in store.list_runs(job="ingest")] == [[]], "no data written"

    generated = json.loads(mlkit_with_key(project, "run", "ingest", "-p", "n_students", 20, "--json", check=0).stdout)
    real = json.loads(mlkit_with_key(project, "run", "ingest", "-p", "source_path", export, "--json",
                                     key="a-school-secret-of-32-characters", check=0).stdout)
    values = {name: json.loads((project.archive / "ingest" / run["id"] / "values.json").read_text())
              for name, run in (("generated", generated), ("real", real))}
    assert (values["generated"]["data_origin"], values["generated"]["pseudonym_key"]) == ("generated", "development")
    assert (values["real"]["data_origin"], values["real"]["pseudonym_key"]) == ("external", KEY)
    assert data_generated_by_mlkit(store.get_run(generated["id"]), store) is True
    assert data_generated_by_mlkit(store.get_run(real["id"]), store) is False
    digest = hashlib.sha256(export.read_bytes()).hexdigest()
    assert [p for p in project.archive.rglob("*") if p.name == digest[2:]] == [], "the raw export is not copied"
