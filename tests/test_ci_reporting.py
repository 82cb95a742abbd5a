"""What CI reads: --junit-xml (checked against the JUnit schema Jenkins, GitHub and GitLab reporters read), the
GitHub step summary and ::error annotations, for `mlkit run`, `pipeline run` and `sweep run`."""

from pathlib import Path

import xmlschema
from junitparser import JUnitXml

JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit-10.xsd"


def read_junit(path) -> list:
    """Check `path` against the JUnit schema; its test suites."""
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(path))
    return list(JUnitXml.fromfile(str(path)))


def test_run_failure_cached_run_summary_and_annotation(project, tmp_path):
    project.job("count", "n = 3", "import mlkit\nmlkit.log_metric('total', n * 2)", "assert n < 5, 'n too big'")
    summary = tmp_path / "summary.md"
    github = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    failed = project.mlkit("run", "count", "-p", "n", "7", "--junit-xml", "out/failed.xml", env=github, check=1)
    [suite] = read_junit(project.root / "out" / "failed.xml")
    [case] = list(suite)
    assert (case.classname, case.name, suite.failures) == ("count", "count", 1)
    assert case.result[0].type == "AssertionError" and case.result[0].message == "AssertionError: n too big"
    assert "in code cell 3: assert n < 5, 'n too big'" in case.result[0].text
    annotation = [line for line in failed.stdout.splitlines() if line.startswith("::error ")]
    notebook = case.result[0].text.split("notebook: ")[1]
    assert annotation == [("::error file=jobs/count.ipynb,title=count count%3A AssertionError::AssertionError: n too big"
                           f"%0Ain code cell 3: assert n < 5, 'n too big'%0Anotebook: {notebook}")]
    assert "| count | ❌ failed | AssertionError: n too big |" in summary.read_text()

    project.mlkit("run", "count", env=github, check=0)
    cached = project.mlkit("run", "count", "--junit-xml", "out/cached.xml", env=github, check=0)
    assert "(cached)" in cached.stdout and "::error" not in cached.stdout
    [suite] = read_junit(project.root / "out" / "cached.xml")
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["count.cached"] == "true" and properties["count.metric.total"] == "6.0"
    [case] = list(suite)
    assert case.is_passed and "reused" in case.system_out
    assert summary.read_text().count("### mlkit run count") == 3


PIPELINE = """name: ci
stages:
  - {name: train, job: train}
  - {name: evaluate, job: evaluate, upstream: {model_run: train}}
  - {name: monitor, job: train, when: {stage: evaluate, alert: drift}}
"""


def test_pipeline_blocked_gate_is_a_failure_with_its_reasons(project, tmp_path):
    project.job("train", "seed = 0", "import mlkit\nmlkit.log_metric('roc_auc', 0.61)")
    project.job("evaluate", "model_run: str = ''",
                "import mlkit\nmlkit.log_value('gate', {'verdict': 'blocked', 'reasons': ['roc_auc: 0.61 < floor 0.7']})\n"
                "mlkit.log_outcome('not promoted: gate blocked')")
    (project.root / "params" / "pipeline.yaml").write_text(PIPELINE)
    summary = tmp_path / "summary.md"
    project.mlkit("pipeline", "run", "--junit-xml", "junit.xml", env={"GITHUB_STEP_SUMMARY": str(summary)}, check=0)
    [suite] = read_junit(project.root / "junit.xml")
    cases = {case.name: case for case in suite}
    assert list(cases) == ["train", "evaluate", "monitor"] and {c.classname for c in suite} == {"ci"}
    assert cases["train"].is_passed and cases["monitor"].is_skipped
    assert cases["evaluate"].result[0].type == "GateBlocked"
    assert cases["evaluate"].result[0].message == "gate blocked: roc_auc: 0.61 < floor 0.7"
    assert "| evaluate | ❌ succeeded | gate blocked: roc_auc: 0.61 < floor 0.7 |" in summary.read_text()


def test_sweep_has_one_case_per_point(project):
    project.job("quad", "x = 1", "import mlkit\nassert x < 3\nmlkit.log_metric('score', -x * x)")
    project.mlkit("sweep", "run", "quad", "--grid", "x=1,5", "--max-workers", "2", "--junit-xml", "sweep.xml", check=1)
    [suite] = read_junit(project.root / "sweep.xml")
    cases = sorted(suite, key=lambda case: case.name)
    assert [(c.name, c.classname, c.is_passed) for c in cases] == [("point 0: x=1", "quad", True),
                                                                   ("point 1: x=5", "quad", False)]
    assert "in code cell 2: import mlkit" in cases[1].result[0].text
