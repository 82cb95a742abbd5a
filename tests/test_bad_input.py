"""Bad input is refused before anything starts; nan/inf stay strict JSON; kernels keep no history."""

import json
import sqlite3
import subprocess

from conftest import MLKIT


def _strict(text: str):
    """JSON `text` parsed strictly: NaN, Infinity and -Infinity are errors."""
    return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(f"not JSON: {name}")))


def test_parameter_text_that_is_not_utf8_is_refused_before_the_run_starts(project):
    project.job("p", 'name = "a"', "print(name)")
    raw = subprocess.run([MLKIT, "run", "p", "-p", "name", b"caf\xff"], cwd=project.root, capture_output=True,
                         timeout=60, check=False)
    stderr = raw.stderr.decode("utf-8", "replace")
    assert raw.returncode == 2, stderr
    assert "parameter 'name' (from -p): text is not valid UTF-8" in stderr
    assert "running p as run" not in stderr and "Traceback" not in stderr
    (project.root / "params" / "lone.yaml").write_text('name: "x\\udcff"\n')
    result = project.mlkit("run", "p", "-f", "params/lone.yaml", check=2)
    assert "text is not valid UTF-8" in result.stderr and "running p" not in result.stderr
    assert project.run_folders() == [] and not list(project.archive.glob(".staging/*"))


def test_a_params_file_of_raw_non_utf8_bytes_is_a_usage_error_naming_it(project):
    project.job("p", 'name = "a"', "print(name)")
    (project.root / "params" / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    result = project.mlkit("run", "p", "-f", "params/latin1.yaml", check=2)
    assert "latin1.yaml is not UTF-8 text" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and project.run_folders() == []


def test_nan_and_inf_parameters_are_strict_json_and_round_trip(project):
    project.job("f", "x = 1.0\ny = 2.0", "import mlkit\nmlkit.log_metric('ok', 1)")
    first = project.mlkit("run", "f", "-p", "x", "nan", "-y", "y: -.inf", "--json", check=0)
    printed = _strict(first.stdout)
    assert printed["params"] == {"x": {"$float": "NaN"}, "y": {"$float": "-Infinity"}}
    folder = project.run_folders("f")[0]
    assert _strict((folder / "manifest.json").read_text())["params_given"]["x"] == {"$float": "NaN"}
    executed = _strict((folder / "notebook.ipynb").read_text())  # papermill's metadata too: no bare NaN
    assert executed["metadata"]["papermill"]["parameters"]["x"] == {"$float": "NaN"}
    for args in (("runs", "show", printed["id"], "--json"), ("runs", "list", "--json"), ("runs", "compare", "--json")):
        _strict(project.mlkit(*args, check=0).stdout)
    again = _strict(project.mlkit("run", "f", "-p", "x", "nan", "-y", "y: -.inf", "--json", check=0).stdout)
    assert again["cached"] is True and again["id"] == printed["id"]
    reproduced = project.mlkit("reproduce", printed["id"], "--json", check=0)
    _strict(reproduced.stdout)


def test_the_notebook_of_a_failed_run_is_strict_json_too(project):
    project.job("f", "x = 1.0", "raise ValueError('on purpose')")
    project.mlkit("run", "f", "-p", "x", "inf", check=1)
    executed = _strict((project.run_folders("f")[0] / "notebook.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["x"] == {"$float": "Infinity"}


def test_job_kernels_write_no_ipython_history(project, tmp_path):
    project.job("h", 'secret = "s3cr3t-value"', "x = secret * 2", "import time\ntime.sleep(0.3)  # history saves in a thread")
    ipython = tmp_path / "ipython"
    env = {"IPYTHONDIR": str(ipython), "HOME": str(tmp_path / "home")}
    project.mlkit("run", "h", "-p", "secret", "s3cr3t-given", env=env, check=0)
    history = ipython / "profile_default" / "history.sqlite"
    if history.exists():
        with sqlite3.connect(history) as connection:
            rows = connection.execute("SELECT source_raw FROM history").fetchall() if _has_history(connection) else []
        assert not any("s3cr3t" in row[0] for row in rows), rows


def _has_history(connection) -> bool:
    return bool(connection.execute("SELECT name FROM sqlite_master WHERE name = 'history'").fetchall())
