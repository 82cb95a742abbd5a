"""`mlkit gc --yes` racing a running job never deletes an object the job stores or will refer to."""

import subprocess

from conftest import MLKIT

from mlkit.gc import object_problems

FILES = 1500


def test_gc_racing_a_snapshotting_job_leaves_every_run_whole(project):
    folder = project.root / "images"
    folder.mkdir()
    for number in range(FILES):
        (folder / f"{number:05}.txt").write_text(f"image {number}\n")
    project.job("snap", f"folder = {str(folder)!r}\nround = 0",
                "import mlkit\nmlkit.log_input(folder)\nmlkit.log_metric('round', round)")
    collections = 0
    for round_number in range(2):
        before = len(project.run_folders("snap"))
        job = subprocess.Popen([MLKIT, "run", "snap", "-p", "round", str(round_number)], cwd=project.root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while job.poll() is None and len(project.run_folders("snap")) == before:
                project.mlkit("gc", "--yes", "--keep-last", "0", "--older-than", "0m", check=0)
                collections += 1
            assert job.wait(timeout=120) == 0, job.stderr.read()
        finally:
            if job.poll() is None:
                job.kill()
        assert object_problems(project.archive) == []  # the run just archived has every object it refers to
        assert project.mlkit("runs", "verify", check=0).returncode == 0
    assert collections >= 2  # gc really ran while jobs did
