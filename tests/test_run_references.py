"""Run references are ids or id prefixes: they never glob and never reach outside the archive."""

import json
import shutil

import mlkit
import pytest
from mlkit.errors import UsageError

SHAPE = "expected YYYYMMDD-HHMMSS-mmm-xxxxxx"
ESCAPES = ["../../outside/evil", "../../outside/evil123", "*", "[0-9]", "2*", "/etc/passwd", "evil"]


def _plant_outside_run(project, source_run: dict):
    """A run-like folder outside the archive whose notebook, if ever executed, leaves a marker file."""
    evil = project.root / "outside" / "evil123"
    shutil.copytree(source_run["path"], evil)
    marker = project.root / "EXECUTED"
    notebook = json.loads((evil / "source.ipynb").read_text())
    notebook["cells"][-1]["source"] = f"open({str(marker)!r}, 'w').write('escaped')"
    (evil / "source.ipynb").write_text(json.dumps(notebook))
    manifest = json.loads((evil / "manifest.json").read_text())
    (evil / "manifest.json").write_text(json.dumps({**manifest, "id": "evil123", "job": "outside"}))
    return marker


def test_references_outside_the_id_shape_are_usage_errors_everywhere(project):
    project.job("a", None, "x = 1")
    run = project.run_json("a", check=0)
    marker = _plant_outside_run(project, run)
    for reference in ESCAPES:
        for args in (("runs", "show", reference), ("reproduce", reference), ("runs", "diff", run["id"], reference),
                     ("runs", "verify", reference), ("models", "register", "m", "--run", reference)):
            result = project.mlkit(*args, check=2)
            assert SHAPE in result.stderr, (args, result.stderr)
            assert "Traceback" not in result.stderr and result.stdout == ""
    assert not marker.exists(), "a notebook outside the archive was executed"
    with pytest.raises(UsageError, match="is not a run id or id prefix"):
        mlkit.get_run("../../outside/evil", archive=project.archive)


def test_prefixes_of_real_ids_still_work(project):
    project.job("a", None, "x = 1")
    run = project.run_json("a", check=0)
    assert run["id"] in project.mlkit("runs", "show", run["id"][:15], check=0).stdout
    assert "no run '19990101'" in project.mlkit("runs", "show", "19990101", check=2).stderr
