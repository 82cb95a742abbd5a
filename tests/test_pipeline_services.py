"""Pipeline services: a real `mlkit serve` started after a stage, its URL passed on, always stopped by its pid."""

import json
import os
import signal
import subprocess
import time

import pytest

from test_serving_app import make_served_archive

PING = ("import json, urllib.request, mlkit\n"
        "with urllib.request.urlopen(server_url + '/version', timeout=5) as answer:\n"
        "    served = json.load(answer)\n"
        "mlkit.log_outcome(f\"{server_url} serves v{served['version']}\")")

FAILING = """name: served
services:
  - {name: server, command: serve, ref: "edtech@champion", after: first}
stages:
  - {name: first, job: noop}
  - {name: ping, job: ping, urls: {server_url: server}}
  - {name: boom, job: boom, after: [ping]}
  - {name: never, job: noop, after: [boom]}
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _jobs(project):
    make_served_archive(project.root, versions=1)  # runs/ with edtech v1 as champion
    project.job("noop", "", "pass")
    project.job("ping", "server_url: str = ''", PING)
    project.job("boom", "", "raise ValueError('the stage broke')")


def test_failing_stage_after_the_server_started_leaves_no_server(project):
    _jobs(project)
    (project.root / "params" / "pipeline.yaml").write_text(FAILING)
    result = project.mlkit("pipeline", "run", "--json", check=1)
    stages = {s["stage"]: s for s in json.loads(result.stdout)["stages"]}
    assert [(s["stage"], s["status"]) for s in stages.values()] == [
        ("first", "succeeded"), ("ping", "succeeded"), ("boom", "failed")]
    record = json.loads(open(json.loads(result.stdout)["record"]).read())
    [server] = record["services"]
    assert stages["ping"]["note"] == f"{server['url']} serves v1"
    assert server["command"][:2] == ["serve", "edtech@champion"] and server["stopped_at"] and server["exit_code"] == 0
    assert _gone(server["pid"]), "the server outlived its pipeline"
    assert "serving edtech:1" in open(server["log"]).read()


def test_services_refused_in_parallel_and_a_server_that_cannot_start_stops_the_pipeline(project):
    _jobs(project)
    (project.root / "params" / "pipeline.yaml").write_text(FAILING)
    parallel = project.mlkit("pipeline", "run", "--max-workers", "2", check=2)
    assert "a pipeline with services runs its stages one at a time" in parallel.stderr
    (project.root / "params" / "pipeline.yaml").write_text(FAILING.replace("edtech@champion", "nothing@champion"))
    result = project.mlkit("pipeline", "run", "--json", check=1)
    stages = json.loads(result.stdout)["stages"]
    assert [(s["stage"], s["status"]) for s in stages] == [("first", "succeeded"), ("server", "failed")]
    assert "before it was ready" in stages[1]["note"] and "nothing" in stages[1]["note"]
    [server] = json.loads(open(json.loads(result.stdout)["record"]).read())["services"]
    assert server["exit_code"] != 0 and _gone(server["pid"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_pipeline_stops_its_server(project, signum):
    from conftest import MLKIT
    _jobs(project)
    project.job("wait", "", "import time\ntime.sleep(60)")
    (project.root / "params" / "pipeline.yaml").write_text(FAILING.replace("job: boom", "job: wait"))
    env = {k: v for k, v in os.environ.items() if k != "MLKIT_ARCHIVE"}
    pipeline = subprocess.Popen([MLKIT, "pipeline", "run"], cwd=project.root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline, record = time.monotonic() + 90, None
        while time.monotonic() < deadline and record is None:  # until stage boom (now a 60 s wait) runs
            for path in (project.root / "runs" / "pipelines" / "served").glob("*.json"):
                written = json.loads(path.read_text())
                if any(s["stage"] == "boom" and s["status"] == "running" for s in written["stages"]):
                    record = written
            time.sleep(0.2)
        assert record is not None, "the pipeline never reached its waiting stage"
        pipeline.send_signal(signum)  # Ctrl-C or a CI runner's cancel, to the pipeline process only
        assert pipeline.wait(60) == 1
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait(10)
    [server] = record["services"]
    assert _gone(server["pid"]), "an interrupted pipeline left its server running"
    [path] = (project.root / "runs" / "pipelines" / "served").glob("*.json")
    final = json.loads(path.read_text())
    assert final["services"][0]["stopped_at"] and final["services"][0]["exit_code"] == 0  # stopped by the pipeline
    assert {s["stage"]: s["status"] for s in final["stages"]}["boom"] == "interrupted"
