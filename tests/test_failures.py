"""Timeouts, signals, kill -9, dying kernels, concurrency and kernel choice: the runner under stress."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import MLKIT


def _wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _start(project, *args):
    env = {k: v for k, v in os.environ.items() if k != "MLKIT_ARCHIVE"}
    return subprocess.Popen([MLKIT, *map(str, args)], cwd=project.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _started_cell(project) -> bool:
    """True once a job under .staging has signalled (through a file) that its slow cell started."""
    return any(project.archive.glob(".staging/*/artifacts/started"))


SLOW = "import mlkit, time, pathlib\npathlib.Path('started').write_text('1'); mlkit.log_artifact('started')\ntime.sleep(60)"


def test_timeout_bounds_the_whole_job(project):
    project.job("slow", None, "import time; time.sleep(1.5)", "time.sleep(1.5)", "time.sleep(60)")
    began = time.monotonic()
    result = project.mlkit("run", "slow", "--timeout", "4", check=1)
    assert time.monotonic() - began < 20
    manifest = json.loads((project.run_folders("slow")[0] / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["ename"] == "TimeoutError"
    assert manifest["error"]["cell"] is not None and "TimeoutError" in result.stderr


def test_sigterm_records_interrupted(project):
    project.job("slow", None, SLOW)
    process = _start(project, "run", "slow")
    assert _wait_for(lambda: _started_cell(project))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1, err
    manifest = json.loads((project.run_folders("slow")[0] / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["error"]["ename"] == "KeyboardInterrupt"
    listed = project.mlkit("runs", "list", "--status", "interrupted", "--json", check=0)
    assert [r["id"] for r in json.loads(listed.stdout)] == [manifest["id"]]


def _processes_with(text: str) -> list:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if text.encode() in environ.read_bytes():
                found.append(environ.parent.name)
        except OSError:
            continue
    return found


def test_kill_9_leaves_the_archive_consistent(project):
    project.job("slow", None, SLOW)
    project.job("quick", None, "x = 1")
    process = _start(project, "run", "slow")
    assert _wait_for(lambda: _started_cell(project))
    staging = next(project.archive.glob(".staging/*"))
    process.kill()
    process.wait(timeout=10)
    assert project.run_folders() == []
    assert project.mlkit("runs", "list", check=0).stdout.strip() == "no runs"
    assert _wait_for(lambda: not _processes_with(str(staging)), 15), "the orphaned kernel kept running"
    assert project.run_json("quick", check=0)["status"] == "succeeded"
    assert not staging.exists(), "the dead runner's staging folder was not swept"
    assert [p.parent.name for p in project.run_folders()] == ["quick"]


DIE_ONCE = """
import os, pathlib
marker = pathlib.Path(marker_path)
if not marker.exists():
    marker.write_text("died once")
    os.kill(os.getpid(), 9)
"""


def test_dead_kernel_is_retried_once(project, tmp_path):
    project.job("flaky", "marker_path = ''", DIE_ONCE, "import mlkit; mlkit.log_metric('ok', 1)")
    manifest = project.run_json("flaky", "-p", "marker_path", tmp_path / "marker", check=0)
    assert manifest["status"] == "succeeded" and manifest["retries"] == 1 and manifest["metrics"] == {"ok": 1.0}


def test_kernel_that_always_dies_fails_after_one_retry(project):
    project.job("dies", None, "import os; os.kill(os.getpid(), 9)")
    result = project.mlkit("run", "dies", check=1)
    manifest = json.loads((project.run_folders("dies")[0] / "manifest.json").read_text())
    assert manifest["retries"] == 1 and manifest["error"]["ename"] == "DeadKernelError"
    assert "DeadKernelError" in result.stderr


def test_user_errors_are_not_retried(project):
    project.job("bad", None, "1 / 0")
    project.mlkit("run", "bad", check=1)
    manifest = json.loads((project.run_folders("bad")[0] / "manifest.json").read_text())
    assert manifest["retries"] == 0 and manifest["error"]["ename"] == "ZeroDivisionError"


def test_eight_concurrent_runs_into_one_archive(project):
    project.job("par", "i: int = 0", "import mlkit; mlkit.log_metric('i', i)")
    processes = [_start(project, "run", "par", "-p", "i", i, "--json") for i in range(8)]
    outputs = [process.communicate(timeout=240) for process in processes]
    assert [p.returncode for p in processes] == [0] * 8, [err for _, err in outputs]
    ids = {json.loads(out)["id"] for out, _ in outputs}
    assert len(ids) == 8
    listed = json.loads(project.mlkit("runs", "list", "--json", check=0).stdout)
    assert {r["id"] for r in listed} == ids
    assert sorted(r["metrics"]["i"] for r in listed) == list(range(8))


def test_user_level_python3_kernelspec_does_not_hijack_jobs(project, tmp_path):
    data_dir = tmp_path / "jupyter-data"
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Someone else's Python", "language": "python",
        "env": {"HIJACKED_BY": "user-level-kernelspec"}}))
    project.job("who", None, "import os, sys, mlkit\nmlkit.log_value('who', {'marker': os.environ.get('HIJACKED_BY'),"
                " 'python': sys.executable})")
    env = {"JUPYTER_DATA_DIR": str(data_dir), "JUPYTER_PATH": str(data_dir)}
    manifest = project.run_json("who", env=env, check=0)
    who = json.loads((project.run_folders("who")[0] / "values.json").read_text())["who"]
    assert who == {"marker": None, "python": sys.executable}
    assert manifest["kernel"]["name"] == "mlkit-python" and manifest["kernel"]["interpreter"] == sys.executable
    manifest = project.run_json("who", "--kernel", "python3", env=env, check=0)
    folder = next(f for f in project.run_folders("who") if f.name == manifest["id"])
    assert json.loads((folder / "values.json").read_text())["who"]["marker"] == "user-level-kernelspec"
    assert manifest["kernel"]["name"] == "python3"
    result = project.mlkit("run", "who", "--kernel", "no-such-kernel", env=env, check=2)
    assert "no kernel named 'no-such-kernel'" in result.stderr
