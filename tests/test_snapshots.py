"""Snapshots of inputs: restored in reproduce, stored once, folders, size limit, opt-out, the state table."""

import json
import os
import time
from unittest.mock import patch

import nbformat

from mlkit.objects import stored_objects

READS = ("import mlkit, pathlib\n"
         "rows = open(mlkit.log_input(path)).read().split()[1:]\n"
         "files = sorted(p.name for p in pathlib.Path(mlkit.log_input(folder)).rglob('*.txt'))\n"
         "mlkit.log_metric('rows', len(rows))\nmlkit.log_metric('files', len(files))\nprint(rows, files)")


def reads_job(project, text_in_folder: str = "a"):
    """The job `reads` over data.csv and the folder images/ (one file holding `text_in_folder`): (data, folder)."""
    data, folder = project.root / "data.csv", project.root / "images"
    data.write_text("x\n1\n2\n")
    folder.mkdir()
    (folder / "a.txt").write_text(text_in_folder)
    project.job("reads", f"path = {str(data)!r}\nfolder = {str(folder)!r}", READS)
    return data, folder


def verdicts(result, aspect):
    return [row["verdict"] for row in json.loads(result.stdout)["rows"] if row["aspect"] == aspect]


def test_changed_and_deleted_inputs_are_restored(project):
    data, folder = reads_job(project)
    original = project.run_json("reads", check=0)
    assert [(i["type"], i["snapshot"]) for i in original["inputs"]] == [("file", True), ("folder", True)]
    objects = len(stored_objects(project.archive))
    with data.open("a") as handle:  # one row appended to the CSV
        handle.write("3\n")
    (folder / "b.txt").write_text("b")
    changed = project.mlkit("reproduce", original["id"], "--json", check=0)
    assert verdicts(changed, "input") == ["restored from snapshot"] * 2
    assert verdicts(changed, "metric") == ["match", "match"] and verdicts(changed, "outputs") == ["match"]
    assert len(stored_objects(project.archive)) == objects  # the reproduction stored nothing new: dedup
    data.unlink()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    gone = project.mlkit("reproduce", original["id"], "--json", check=0)
    assert verdicts(gone, "input") == ["restored from snapshot"] * 2 and verdicts(gone, "outputs") == ["match"]
    assert not list((project.archive / ".staging").iterdir())


def test_size_limit_and_opt_out(project):
    reads_job(project)
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "snapshot_limit = 4\n")
    limited = project.run_json("reads", check=0)
    assert [i["snapshot"] for i in limited["inputs"]] == [False, True]  # 6 bytes > 4; the folder holds 1
    assert "larger than the snapshot limit" in limited["inputs"][0]["snapshot_note"]
    notebook = nbformat.read(project.root / "jobs" / "reads.ipynb", as_version=4)
    notebook.metadata["mlkit"] = {"snapshots": False}
    nbformat.write(notebook, project.root / "jobs" / "reads.ipynb")
    off = project.run_json("reads", "--force", check=0)  # settings are not part of the cache key
    assert [i["snapshot_note"] for i in off["inputs"]] == ["snapshots are off for this project or job"] * 2
    assert off["inputs"][0]["sha256"] == limited["inputs"][0]["sha256"]  # hashed all the same


def test_state_table_skips_rehashing(tmp_path):
    import mlkit
    from mlkit import objects
    data = tmp_path / "big.csv"
    data.write_bytes(b"x" * 100_000)
    old = time.time() - 3600
    os.utime(data, (old, old))
    calls = []
    real = objects.sha256_file
    env = {"MLKIT_RUN_DIR": str(tmp_path / "run"), "MLKIT_ARCHIVE": str(tmp_path / "runs")}
    (tmp_path / "run").mkdir()
    with patch.dict(os.environ, env), patch.object(objects, "sha256_file", lambda p: calls.append(p) or real(p)):
        for _ in range(3):
            mlkit.log_input(data)
        assert len(calls) == 1  # stored and hashed once, then looked up
        os.utime(data, (old + 1, old + 1))  # touched: hashed again (the object exists: not stored again)
        mlkit.log_input(data)
        assert len(calls) == 2
    assert len(stored_objects(tmp_path / "runs")) == 1


def test_checkout_onto_a_dangling_symlink_is_one_line(project):
    reads_job(project)
    run = project.run_json("reads", check=0)
    (project.root / "out").symlink_to(project.root / "nowhere")
    refused = project.mlkit("data", "checkout", run["id"], "--to", "out", check=2)
    assert "out is a symbolic link to nothing" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    (project.root / "into").mkdir()
    (project.root / "into" / "data.csv").symlink_to(project.root / "elsewhere")
    refused = project.mlkit("data", "checkout", run["id"], "--to", "into", check=2)
    assert "already exists; checkout never overwrites" in refused.stderr and "Traceback" not in refused.stderr
    assert not (project.root / "nowhere").exists() and not (project.root / "elsewhere").exists()
