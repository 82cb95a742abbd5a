"""A run cache that survives a move: a copy of a project at another absolute path, with a copy of its archive,
executes no unchanged pipeline stage and leaves the registry as it was."""

import json
import shutil

from mlkit.archive import Archive

from conftest import REPO, Project

PIPELINE = """name: tiny
stages:
  - {name: fit, job: fit}
  - {name: publish, job: publish, upstream: {fit_run: fit}}
"""
FIT = """import tempfile
from pathlib import Path

import mlkit
from mlkit.models import save_model
from sklearn.linear_model import LogisticRegression

rows = [line.split(",") for line in Path(mlkit.log_input("../data/points.csv")).read_text().split()]
model = LogisticRegression().fit([[float(x)] for x, _ in rows], [int(y) for _, y in rows])
with tempfile.TemporaryDirectory() as folder:
    save_model(model, Path(folder) / "model.skops")
    mlkit.log_artifact(Path(folder) / "model.skops")"""
PUBLISH = """import mlkit
from mlkit.registry import Registry, aliases, promote

registry = Registry()
version = registry.register("tiny", mlkit.upstream(fit_run, job="fit"))
if aliases(registry, "tiny").get("champion") != version.version:
    promote(registry, "tiny", version.version, reason="published")
mlkit.log_outcome(f"tiny v{version.version}")"""


def _tiny_project(root) -> Project:
    """A project whose pipeline fits a model on a data file inside it and registers and crowns it."""
    root.mkdir(parents=True)
    project = Project(root)
    (root / "data").mkdir()
    (root / "data" / "points.csv").write_text("0,0\n1,0\n2,1\n3,1\n")
    project.job("fit", None, FIT)
    project.job("publish", "fit_run: str = ''", PUBLISH)
    (root / "params" / "pipeline.yaml").write_text(PIPELINE)
    return project


def _registry_files(archive) -> dict:
    """Every file of the registry's mirror in `archive`, by relative path."""
    folder = archive / "registry"
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_moved_copy_of_the_project_runs_no_unchanged_stage(tmp_path):
    first = _tiny_project(tmp_path / "a" / "project")
    record = json.loads(first.mlkit("pipeline", "run", "--json", check=0).stdout)
    assert [s["cached"] for s in record["stages"]] == [False, False]
    registry_before = _registry_files(first.archive)
    assert "tiny/v1.json" in registry_before

    # Another absolute path: the project's files and a copy of its archive.
    shutil.copytree(first.root, tmp_path / "b" / "elsewhere")
    first.root.rename(tmp_path / "a" / "gone")  # the old place no longer exists: nothing may be read from it
    moved = Project.__new__(Project)
    moved.root, moved.archive = tmp_path / "b" / "elsewhere", tmp_path / "b" / "elsewhere" / "runs"
    runs_before = len(list(moved.archive.glob("*/*/manifest.json")))

    again = json.loads(moved.mlkit("pipeline", "run", "--json", check=0).stdout)
    assert [(s["stage"], s["cached"]) for s in again["stages"]] == [("fit", True), ("publish", True)]
    assert [s["run_id"] for s in again["stages"]] == [s["run_id"] for s in record["stages"]]
    assert len(list(moved.archive.glob("*/*/manifest.json"))) == runs_before  # no kernel: no new run folder
    assert _registry_files(moved.archive) == registry_before

    # The manifest keeps the absolute path for people, the key reads the relative one.
    fit = Archive(moved.archive).get_run(record["stages"][0]["run_id"]).manifest
    assert fit["inputs"][0]["key_path"] == "data/points.csv"
    assert fit["inputs"][0]["path"] == str((tmp_path / "a" / "project" / "data" / "points.csv").resolve())


def test_the_main_pipelines_keys_are_relative_to_the_project():
    from mlkit.cache import cache_base, key_path
    from mlkit.config import find_project
    from mlkit.prepare import prepare
    from mlkit.runner import job_cache_base

    project = find_project(REPO)
    job = prepare("train", project=project)
    assert key_path(job.cwd, project.root) == "nbs/jobs"
    assert job_cache_base(job) == cache_base(job.notebook, json.loads(json.dumps(job.params, default=str)),
                                             job.kernel_name, "/anywhere/nbs/jobs",
                                             root="/anywhere")
