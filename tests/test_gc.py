"""mlkit gc: dry run by default, pinned runs and model lineage kept, crash-safe (unreference, then delete)."""

from datetime import timedelta
from unittest.mock import patch

import pytest

from mlkit import gc as gc_module
from mlkit.archive import Archive
from mlkit.objects import object_path, remove_object, stored_objects
from mlkit.registry import Registry
from mlkit.snapshots import run_objects

JOB = ("import mlkit, os, tempfile\n"
       "rows = open(mlkit.log_input(path)).read().split()\n"
       "mlkit.log_metric('rows', len(rows))\n"
       "model = os.path.join(tempfile.mkdtemp(), 'model.bin')\n"
       "open(model, 'wb').write(b'model')\nmlkit.log_artifact(model)")


def four_runs(project):
    "Four runs of one job, each reading different data: ids in order."
    data = project.root / "data.csv"
    project.job("train", f"path = {str(data)!r}\nn = 0", JOB)
    ids = []
    for n in range(4):
        data.write_text("1\n" * (n + 1))
        ids.append(project.run_json("train", "-p", "n", n, check=0)["id"])
    return ids


def test_gc_keeps_pinned_lineage_and_last_and_survives_a_crash(project):
    model_run, pinned, dropped, last = four_runs(project)
    archive = Archive(project.archive)
    Registry(archive).register("m", archive.get_run(model_run), artifact="model.bin")  # a stand-in file
    project.mlkit("runs", "pin", pinned, check=0)
    dropped_data = archive.get_run(dropped).manifest["inputs"][0]["sha256"]
    before = stored_objects(project.archive)
    dry = project.mlkit("gc", "--older-than", "0m", check=0).stdout
    assert dry.startswith("would delete 1 objects") and dropped in dry and pinned not in dry
    assert stored_objects(project.archive) == before  # a dry run deletes nothing
    plan = gc_module.plan_gc(archive, timedelta(0), keep_last=1)
    assert plan.kept[model_run] == "model lineage" and plan.kept[pinned] == "pinned" and plan.kept[last] == "kept last"
    with patch.object(gc_module, "remove_object", side_effect=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        gc_module.collect_garbage(archive, plan)  # killed after unreferencing, before deleting
    assert gc_module.object_problems(project.archive) == []
    assert object_path(project.archive, dropped_data).is_file()
    assert project.mlkit("gc", "--older-than", "0m", "--yes", check=0).stdout.startswith("deleted 1 objects")
    assert not object_path(project.archive, dropped_data).is_file()
    assert gc_module.object_problems(project.archive) == []
    assert project.mlkit("runs", "verify", check=0).returncode == 0  # verify checks the objects too
    for kept in (model_run, pinned, last):
        assert project.mlkit("data", "checkout", kept, "--to", project.root / kept, check=0).returncode == 0
    assert project.mlkit("data", "checkout", dropped, "--to", project.root / "d", check=1).returncode == 1
    project.mlkit("runs", "unpin", pinned, check=0)
    assert pinned in project.mlkit("gc", "--older-than", "0m", check=0).stdout
    kept_object = sorted(run_objects(archive.get_run(last).manifest, project.archive))[0]
    remove_object(project.archive, kept_object)
    damaged = project.mlkit("runs", "verify", check=1)
    assert damaged.returncode == 1 and f"object {kept_object[:12]} is missing" in damaged.stdout + damaged.stderr
