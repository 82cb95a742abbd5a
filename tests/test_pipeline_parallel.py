"""mlkit pipeline run --max-workers 2: independent stages side by side, same outcome and lineage as one at a time."""

import json

from mlkit.archive import Archive

PIPELINE = """name: standin
stages:
  - {name: make_a, job: make, params: {quality: 0.7}}
  - {name: make_b, job: make, params: {quality: 0.9}}
  - {name: pick, job: pick, upstream: {a_run: make_a, b_run: make_b}}
  - {name: report, job: make, params: {quality: 0.0}, after: [pick]}
"""


def lineage(archive, record: dict) -> dict:
    """stage -> (status, outcome, names of the stages its run lists as upstream)."""
    store = Archive(archive)
    names = {stage["run_id"]: stage["stage"] for stage in record["stages"]}
    result = {}
    for stage in record["stages"]:
        run = store.get_run(stage["run_id"])
        result[stage["stage"]] = (stage["status"], stage["note"], [names[i] for i in run.manifest["upstream"]])
    return result


def test_pipeline_with_two_workers_matches_one(project):
    project.job("make", "quality: float = 0.5",
                "import time, mlkit\ntime.sleep(0.5)\nmlkit.log_metric('auc', quality)")
    project.job("pick", "a_run: str = ''\nb_run: str = ''",
                "import mlkit\nscores = {name: mlkit.get_run(ref).metrics['auc'] for name, ref in "
                "(('a', a_run), ('b', b_run))}\nmlkit.log_outcome('champion: ' + max(scores, key=scores.get))")
    (project.root / "params" / "pipeline.yaml").write_text(PIPELINE)
    one = project.mlkit("pipeline", "run", "--json", "--archive", "one", check=0)
    two = project.mlkit("pipeline", "run", "--max-workers", "2", "--archive", "two", check=0)
    assert two.stdout.splitlines()[0].split()[:3] == ["stage", "job", "status"]
    assert [line.split()[0] for line in two.stdout.splitlines()[2:6]] == ["make_a", "make_b", "pick", "report"]
    assert "champion: b" in two.stdout
    started = [line for line in two.stderr.splitlines() if line.endswith(": running")]
    assert started[:2] == ["mlkit: [1/4] make_a (make): running", "mlkit: [2/4] make_b (make): running"]

    record_one = json.loads(one.stdout)
    record_two = json.loads(sorted((project.root / "two" / "pipelines" / "standin").glob("*.json"))[-1].read_text())
    expected = {"make_a": ("succeeded", "", []), "make_b": ("succeeded", "", []),
                "pick": ("succeeded", "champion: b", ["make_a", "make_b"]), "report": ("succeeded", "", ["pick"])}
    assert lineage(project.root / "one", record_one) == expected
    assert lineage(project.root / "two", record_two) == expected
    a, b = (Archive(project.root / "two").get_run(s["run_id"]).manifest for s in record_two["stages"][:2])
    assert b["started_at"] < a["finished_at"] and a["started_at"] < b["finished_at"]  # they overlapped
