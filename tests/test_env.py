"""The environment as code: `mlkit env RUN` gives a requirements file that rebuilds the run's environment with pip."""

import json
import subprocess
import sys

from mlkit.archive import Archive, new_run_id
from mlkit.snapshots import describe_environment, store_environment

PIP = [sys.executable, "-m", "pip"]


def tiny_venv(folder):
    "A venv without pip (fast); pip from this environment installs into it with `--python`."
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    return folder / "bin" / "python"


def test_env_requirements_install_in_a_fresh_venv(project, tmp_path):
    original = tiny_venv(tmp_path / "original")
    subprocess.run([*PIP, "--python", str(original), "install", "-q", "six==1.17.0"], check=True, timeout=120,
                   capture_output=True)
    lock = json.loads(describe_environment(str(original)))
    assert lock["packages"] == {"six": "1.17.0"}
    # A run whose kernel had that environment (stored the way the runner stores it).
    archive = Archive(project.archive)
    from mlkit.objects import store_bytes
    sha = store_bytes(archive.root, describe_environment(str(original)).encode())
    run_id = new_run_id()
    staging = archive.stage(run_id)
    archive.commit(staging, {"id": run_id, "job": "tiny", "status": "succeeded", "environment": {"lock": sha}})
    requirements = project.mlkit("env", run_id, check=0).stdout
    assert requirements.splitlines()[-1] == "six==1.17.0"
    (tmp_path / "requirements.txt").write_text(requirements)
    rebuilt = tiny_venv(tmp_path / "rebuilt")
    subprocess.run([*PIP, "--python", str(rebuilt), "install", "-q", "-r", str(tmp_path / "requirements.txt")],
                   check=True, timeout=120, capture_output=True)
    assert json.loads(describe_environment(str(rebuilt)))["packages"] == lock["packages"]
    docker = project.mlkit("env", run_id, "--format", "dockerfile", check=0).stdout
    assert f"FROM python:{'.'.join(lock['python'].split('.')[:2])}-slim" in docker
    assert "six==1.17.0" in docker and docker.rstrip().endswith(f'CMD ["mlkit", "reproduce", "{run_id}"]')


def test_runs_record_their_environment_once(project):
    project.job("a", "n = 1", "import mlkit\nmlkit.log_metric('n', n)")
    first = project.run_json("a", check=0)
    second = project.run_json("a", "-p", "n", "2", check=0)
    lock = first["environment"]["lock"]
    assert lock and second["environment"]["lock"] == lock  # one object for one environment
    assert store_environment(project.archive) == lock  # the kernel runs this interpreter
    assert "package" not in project.mlkit("reproduce", first["id"], check=0).stdout  # no package differs
    assert project.mlkit("env", "19990101", check=2).returncode == 2
