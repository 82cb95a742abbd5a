"""`mlkit runs list|show|reindex` against a real archive."""

import json


def test_list_show_reindex(project):
    project.job("a", "x: int = 0", "import mlkit; mlkit.log_metric('x', x)")
    project.job("b", None, "raise RuntimeError('no')")
    first = project.run_json("a", "-p", "x", 1, check=0)
    second = project.run_json("a", "-p", "x", 2, check=0)
    project.mlkit("run", "b", check=1)
    table = project.mlkit("runs", "list", check=0).stdout
    assert first["id"] in table and "x=1" in table and "failed" in table
    only_a = json.loads(project.mlkit("runs", "list", "--job", "a", "--json", check=0).stdout)
    assert [r["id"] for r in only_a] == [first["id"], second["id"]]
    failed = json.loads(project.mlkit("runs", "list", "--status", "failed", "--json", check=0).stdout)
    assert [r["job"] for r in failed] == ["b"]
    shown = project.mlkit("runs", "show", second["id"][:-2], check=0).stdout
    assert second["id"] in shown and "x = 2" in shown
    shown = json.loads(project.mlkit("runs", "show", second["id"], "--json", check=0).stdout)
    assert shown["metrics"] == {"x": 2.0}
    ambiguous = project.mlkit("runs", "show", first["id"][:4], check=2)
    assert "ambiguous" in ambiguous.stderr
    assert "no run" in project.mlkit("runs", "show", "19990101", check=2).stderr
    (project.archive / "index.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (project.archive / f"index.sqlite{suffix}").unlink(missing_ok=True)
    rebuilt = project.mlkit("runs", "list", check=0)  # a missing index is rebuilt on first use, with a notice
    assert "the run index was missing; rebuilt it from 3 run folders" in rebuilt.stderr
    assert "indexed 3 runs" in project.mlkit("runs", "reindex", check=0).stdout
    assert len(json.loads(project.mlkit("runs", "list", "--json", check=0).stdout)) == 3


def test_show_finds_a_run_missing_from_the_index(project):
    """A runner killed between its rename and its index write leaves a run only on disk: show still finds it."""
    project.job("a", None, "pass")
    run_id = project.run_json("a", check=0)["id"]
    import sqlite3
    with sqlite3.connect(project.archive / "index.sqlite") as connection:
        connection.execute("DELETE FROM runs")
    assert run_id in project.mlkit("runs", "show", run_id[:-1], check=0).stdout


def test_archive_from_environment_variable(project, tmp_path):
    project.job("a", None, "pass")
    elsewhere = tmp_path / "elsewhere"
    project.mlkit("run", "a", env={"MLKIT_ARCHIVE": str(elsewhere)}, check=0)
    assert project.mlkit("runs", "list", "--archive", elsewhere, check=0).stdout.count("succeeded") == 1
