"""Pipelines under concurrency: stage parameters checked before the
first stage, one run of a pipeline at a time, unique records, a record written as the pipeline goes (kill -9), and
promotion as a compare-and-set on the alias."""

import json
import os
import shutil
import signal
import subprocess
import time

from conftest import MLKIT, REPO

QUICK = "name: quick\nstages:\n  - {name: first, job: nap, params: {seconds: 0.0}}\n"


def nap_job(project):
    project.job("nap", "seconds: float = 0.0", "import time, mlkit\ntime.sleep(seconds)\nmlkit.log_metric('slept', seconds)")


def pipeline_file(project, text, name="pipeline.yaml"):
    path = project.root / "params" / name
    path.write_text(text)
    return path


def records(project, name):
    return sorted((project.archive / "pipelines" / name).glob("*.json"))


def wait_for(condition, seconds=60.0):
    """Poll `condition` every 0.1 s until it is true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def start_pipeline(project, *args):
    """A real `mlkit pipeline run` in its own process group (so kill -9 reaches its kernel too)."""
    env = {k: v for k, v in os.environ.items() if k != "MLKIT_ARCHIVE"}
    return subprocess.Popen([MLKIT, "pipeline", "run", *args], cwd=project.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def test_stage_parameters_are_checked_before_the_first_stage(project):
    nap_job(project)
    pipeline_file(project, "stages:\n  - {name: first, job: nap}\n  - {name: second, job: nap, params: [1, 2]}\n")
    result = project.mlkit("pipeline", "run", check=2)
    assert "stage 'second': 'params' must be a mapping" in result.stderr and "Traceback" not in result.stderr
    pipeline_file(project, "stages:\n  - {name: first, job: nap}\n  - {name: second, job: nap, params: {seconds: soon}}\n")
    result = project.mlkit("pipeline", "run", check=2)
    assert "stage 'second'" in result.stderr and "seconds" in result.stderr
    pipeline_file(project, "stages:\n  - {name: first, job: nap}\n  - {name: second, job: nap, params: {naps: 2}}\n")
    assert "unknown parameter 'naps'" in project.mlkit("pipeline", "run", check=2).stderr
    assert project.run_folders() == [], "no stage ran"


def test_one_run_of_a_pipeline_at_a_time_and_unique_records(project):
    nap_job(project)
    pipeline_file(project, "name: slow\nstages:\n  - {name: first, job: nap, params: {seconds: 2.5}}\n")
    first = start_pipeline(project, "--json")
    try:
        wait_for(lambda: records(project, "slow"))
        refused = project.mlkit("pipeline", "run", check=1)
        assert "pipeline 'slow' is already running" in refused.stderr
        assert f"(pid {first.pid} on " in refused.stderr and "started 20" in refused.stderr
        assert "--wait" in project.mlkit("pipeline", "run", "--help").stdout
        queued = project.mlkit("pipeline", "run", "--wait", "--json", check=0)
        out, _ = first.communicate(timeout=60)
        assert first.returncode == 0
    finally:
        stop(first)
    paths = [json.loads(out)["record"], json.loads(queued.stdout)["record"]]
    assert paths[0] != paths[1] and len(records(project, "slow")) == 2
    one, two = (json.loads(open(path).read()) for path in paths)
    assert one["finished_at"] <= two["started_at"], "the second run waited for the first"
    assert len(project.run_folders("nap")) == 1, "the second run was served from the cache, one nap ran"


def test_killed_pipeline_leaves_a_record_of_where_it_was_cut_off(project):
    nap_job(project)
    pipeline_file(project, "name: cut\nstages:\n  - {name: first, job: nap}\n"
                           "  - {name: second, job: nap, params: {seconds: 60.0}}\n  - {name: third, job: nap}\n")
    process = start_pipeline(project)
    try:
        def second_running():
            found = records(project, "cut")
            stages = json.loads(found[-1].read_text())["stages"] if found else []
            return [s["status"] for s in stages] == ["succeeded", "running"]
        wait_for(second_running)
        running = project.mlkit("pipeline", "status", check=0).stdout
        assert "still running (pid" in running
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        stop(process)
    status = project.mlkit("pipeline", "status", check=0)
    lines = status.stdout.splitlines()
    assert "cut off: its process" in lines[0]
    assert lines[3].split()[:3] == ["first", "nap", "succeeded"] and lines[4].split()[:4] == ["second", "nap", "cut", "off"]
    assert "third" not in status.stdout
    assert json.loads(project.mlkit("pipeline", "status", "--json", check=0).stdout)["state"] == "cut off"
    project.mlkit("pipeline", "run", "--file", pipeline_file(project, QUICK.replace("quick", "cut"), "again.yaml"),
                  check=0)  # the lock did not outlive the killed process


def archived_run(archive, job, values, model=None):
    """A run archived by hand as the runner leaves it (a model file among its artifacts, if given)."""
    from mlkit.archive import new_run_id
    from mlkit.fingerprint import file_record
    from mlkit.models import save_model
    run_id = new_run_id()
    staging = archive.stage(run_id)
    if model is not None:
        save_model(model, staging / "artifacts" / "model.skops")
    (staging / "values.json").write_text(json.dumps(values))
    artifacts = staging / "artifacts"
    records = [file_record(p, f"artifacts/{p.name}") for p in sorted(artifacts.iterdir())] if artifacts.is_dir() else []
    return archive.commit(staging, {"id": run_id, "job": job, "status": "succeeded", "artifacts": records})


def test_promotion_is_a_compare_and_set_on_the_alias(project):
    """Two pipelines each evaluated a model when there was no champion: the first promotion wins, the second is
    declined (the champion moved since its gate measured against 'none') and the attempt is in the history."""
    from sklearn.linear_model import LogisticRegression

    from mlkit.archive import Archive
    shutil.copy(REPO / "nbs" / "jobs" / "promote.ipynb", project.root / "jobs" / "promote.ipynb")
    archive, evaluations = Archive(project.archive), []
    for c in (1.0, 2.0):
        trained = archived_run(archive, "train", {}, LogisticRegression(C=c).fit([[0.0], [1.0], [0.2], [0.9]], [0, 1, 0, 1]))
        gate = {"verdict": "passed", "reasons": [], "model_run": trained.id, "baseline_run": None, "baseline_version": None}
        evaluations.append(archived_run(archive, "evaluate", {"gate": gate}).id)
    first = project.run_json("promote", "-p", "evaluation_run", evaluations[0], check=0)
    second = project.run_json("promote", "-p", "evaluation_run", evaluations[1], check=0)
    assert json.loads((project.archive / "promote" / first["id"] / "values.json").read_text())["promotion"]["promoted"]
    outcome = json.loads((project.archive / "promote" / second["id"] / "values.json").read_text())["promotion"]
    assert not outcome["promoted"] and "declined v2" in outcome["outcome"]
    assert "measured at no version but is at v1" in outcome["outcome"]
    history = project.mlkit("models", "history", "edtech", "--json", check=0)
    events = json.loads(history.stdout)
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 1)]
    assert events[-1]["reason"].startswith("declined v2")
    assert json.loads((project.archive / "registry" / "edtech" / "aliases.json").read_text()) == {"champion": 1}
    assert "no earlier version" in project.mlkit("models", "rollback", "edtech", check=2).stderr
