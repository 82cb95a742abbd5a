"""The index heals, damaged manifests are listed, read-only archives read, a full disk loses nothing."""

import json
import os
import resource
import shutil
import subprocess

import pytest
from conftest import MLKIT
from mlkit.archive import Archive
from mlkit.registry import Registry

MODEL_JOB = ("import mlkit, pathlib\npathlib.Path('model.bin').write_bytes(b'weights')\n"
             "mlkit.log_artifact('model.bin')\nmlkit.log_metric('auc', 0.8)")


def _drop_index(archive):
    for suffix in ("", "-wal", "-shm"):
        (archive / f"index.sqlite{suffix}").unlink(missing_ok=True)


def _copy_run(folder, new_id: str, manifest_text: str | None = None):
    """A copy of run `folder` under `new_id`, with its manifest's id changed or replaced by `manifest_text`."""
    target = folder.parent / new_id
    shutil.copytree(folder, target)
    manifest = json.loads((folder / "manifest.json").read_text())
    (target / "manifest.json").write_text(manifest_text if manifest_text is not None
                                          else json.dumps({**manifest, "id": new_id}))
    return target


def test_a_deleted_index_is_rebuilt_on_first_use_and_the_cache_hits_again(project):
    project.job("a", "n = 1", "x = n")
    first = project.run_json("a", check=0)
    _drop_index(project.archive)
    again = project.mlkit("run", "a", "--json", check=0)
    assert json.loads(again.stdout)["cached"] is True and json.loads(again.stdout)["id"] == first["id"]
    assert "the run index was missing; rebuilt it from 1 run folders" in again.stderr
    _drop_index(project.archive)
    listed = project.mlkit("runs", "list", check=0)
    assert first["id"] in listed.stdout and "rebuilt it from 1 run folders" in listed.stderr


def test_a_corrupted_index_is_one_line_and_reindex_always_recovers(project):
    project.job("a", None, "x = 1")
    run = project.run_json("a", check=0)
    _drop_index(project.archive)
    (project.archive / "index.sqlite").write_bytes(b"this is not an SQLite database " * 200)
    for args in (("runs", "list"), ("runs", "show", run["id"]), ("run", "a"), ("models", "list")):
        result = project.mlkit(*args, check=2)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "is damaged (file is not a database)" in lines[0], result.stderr
        assert "`mlkit runs reindex`" in lines[0]
    repaired = project.mlkit("runs", "reindex", check=0)
    assert "indexed 1 runs" in repaired.stdout and "moved it aside to index.sqlite.damaged-" in repaired.stderr
    assert run["id"] in project.mlkit("runs", "list", check=0).stdout
    assert len(list(project.archive.glob("index.sqlite.damaged-*"))) == 1


def test_damaged_manifests_are_listed_never_dropped_and_verify_names_every_problem(project):
    project.job("train", None, MODEL_JOB)
    good = project.run_json("train", check=0)
    folder = project.run_folders("train")[0]
    damaged = {"20200101-000000-000-aaaaaa": '{"id": "20200101-000000-000-aaaaaa", "job": "tr',
               "20200101-000000-000-bbbbbb": json.dumps({"job": "train", "status": "succeeded"}),
               "20200101-000000-000-cccccc": "[1, 2, 3]"}
    for run_id, text in damaged.items():
        _copy_run(folder, run_id, text)
    Registry(Archive(project.archive)).register("m", Archive(project.archive).get_run(good["id"]), artifact="model.bin")
    reindexed = project.mlkit("runs", "reindex", check=0)
    assert "indexed 1 runs" in reindexed.stdout
    for run_id, reason in zip(damaged, ("is not valid JSON", "has no 'id'", "holds a JSON list"), strict=True):
        assert f"damaged: train/{run_id}: manifest.json {reason}" in reindexed.stdout
    listed = json.loads(project.mlkit("runs", "list", "--status", "damaged", "--json", check=0).stdout)
    assert sorted(r["id"] for r in listed) == sorted(damaged) and all(r["problem"] for r in listed)
    plain = project.mlkit("runs", "list", check=0)
    assert good["id"] in plain.stdout and "3 damaged run folder(s) not listed" in plain.stderr
    assert project.mlkit("runs", "verify", good["id"], check=0).stdout.startswith("ok: run")
    report = json.loads(project.mlkit("runs", "verify", "--json", check=1).stdout)
    assert sorted(p["run"] for p in report["problems"]) == sorted(damaged) and report["ok"] is False
    (folder / "artifacts" / "model.bin").write_bytes(b"tampered")
    checks = json.loads(project.mlkit("runs", "verify", good["id"], "--json", check=1).stdout)["problems"]
    assert sorted(p["check"] for p in checks) == ["files", "models"]
    assert all("artifacts/model.bin changed" in p["problem"] for p in checks)


def _read_only_command(archive, *args):
    """`mlkit ARGS` with `archive` read-only: a read-only bind mount for root (in its own mount namespace), else chmod."""
    if os.geteuid() == 0:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        command = ["unshare", "--mount", "sh", "-c", script, str(archive), MLKIT, *args]
    else:
        command = [MLKIT, *args]
    return subprocess.run(command, cwd=archive.parent, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def read_only(project):
    yield project
    for path in [project.archive, *project.archive.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def test_reading_commands_work_on_a_read_only_archive(read_only):
    project = read_only
    project.job("train", None, MODEL_JOB)
    run = project.run_json("train", check=0)
    Registry(Archive(project.archive)).register("m", Archive(project.archive).get_run(run["id"]), artifact="model.bin")
    if os.geteuid() != 0:
        for path in [project.archive, *project.archive.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    before = sorted(p.name for p in project.archive.iterdir())
    for args in (("runs", "list"), ("runs", "show", run["id"][:12]), ("models", "list"), ("pipeline", "status"),
                 ("sweep", "list"), ("runs", "verify"), ("runs", "compare")):
        result = _read_only_command(project.archive, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert run["id"] in _read_only_command(project.archive, "runs", "list").stdout
    assert "m" in _read_only_command(project.archive, "models", "list").stdout
    refused = _read_only_command(project.archive, "runs", "reindex")
    assert refused.returncode == 2 and "is read-only: cannot rebuild its index" in refused.stderr
    assert sorted(p.name for p in project.archive.iterdir()) == before


def _limit_file_size():
    """In the child: files may not grow past 256 KiB (writes beyond fail with EFBIG, as on a full disk)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_full_disk_while_archiving_is_one_line_and_loses_nothing(project):
    project.job("small", None, "x = 1")
    kept = project.run_json("small", check=0)
    project.job("big", None, "print('y' * 600_000)")
    result = subprocess.run([MLKIT, "run", "big"], cwd=project.root, capture_output=True, text=True, timeout=120,
                            check=False, preexec_fn=_limit_file_size)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("mlkit: error: no space left to archive run ") and "File too large" in lines[-1]
    assert "its staging folder was removed" in lines[-1]
    assert list((project.archive / ".staging").iterdir()) == []
    assert [p.name for p in project.run_folders()] == [kept["id"]]
    assert project.mlkit("runs", "verify", check=0).stdout.startswith("ok: every run")
