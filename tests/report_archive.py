"""A small fabricated archive holding every kind of report page: a pipeline-like set of runs, a sweep over a
log-spaced parameter, monitoring runs (one alerting, not the latest), a registry with a rollback, a serving log,
and hostile content (scripts in notebook HTML, markdown and an SVG artifact)."""

import hashlib
import json
from pathlib import Path

import nbformat

SWEEP_C = [0.001, 0.01, 0.1, 1.0, 10.0]
HOSTILE_MARKDOWN = "# Prepared\n\n<img src=x onerror=\"alert('markdown')\"><script>alert('markdown script')</script>"
HOSTILE_HTML = "<b>table</b><script>alert('html output')</script><img src=x onerror=\"alert('html img')\">"
HOSTILE_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60" onload="alert(\'svg onload\')">'
               "<script>alert('svg script')</script><rect width='120' height='60' fill='#3b6fb6'/></svg>")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cf"
                    "c0f01f0005000201a1e2ae6f0000000049454e44ae426082")


def run_id(number: int, minute: int = 0) -> str:
    return f"20261204-22{minute:02d}{number % 60:02d}-{number:03d}-{number:06x}"


def write_run(root: Path, job: str, rid: str, started: str, params=None, metrics=None, values=None, upstream=(),
              artifacts=None, alerts=(), notebook=None, status="succeeded") -> str:
    folder = root / job / rid
    (folder / "artifacts").mkdir(parents=True)
    records = []
    for name, data in (artifacts or {}).items():
        (folder / "artifacts" / name).write_bytes(data)
        records.append({"path": f"artifacts/{name}", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"id": rid, "job": job, "status": status, "started_at": started, "finished_at": started,
                "duration_s": 1.5, "params": params or {}, "metrics": metrics or {}, "inputs": [],
                "artifacts": records, "upstream": list(upstream), "alerts": list(alerts), "error": None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "values.json").write_text(json.dumps(values or {"outcome": f"{job} done"}))
    if notebook is not None:
        (folder / "notebook.ipynb").write_text(nbformat.writes(notebook))
    return rid


def hostile_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(HOSTILE_MARKDOWN),
                nbformat.v4.new_code_cell("show()", outputs=[
                    nbformat.v4.new_output("display_data", data={"text/html": HOSTILE_HTML}),
                    nbformat.v4.new_output("display_data", data={"application/javascript": "alert('js output')"}),
                    nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="},
                                           metadata={"image/png": {"width": "1 onerror=alert('width')"}})])]
    return nb


def drift_csv(drifted: bool) -> bytes:
    psi = "0.3100" if drifted else "0.0200"
    rows = ["feature,type,test,statistic,threshold,drifted,note",
            f"video_minutes,numeric,psi+wasserstein,{0.25 if drifted else 0.02},0.1,{drifted},PSI {psi} (threshold 0.2)",
            f"score,numeric,psi+wasserstein,{0.18 if drifted else 0.01},0.1,{drifted},PSI {psi} (threshold 0.2)",
            "semester,categorical,chi2,0.4,0.05,False,"]
    return ("\n".join(rows) + "\n").encode()


def distributions(shift: float) -> dict:
    bins = ["0-10", "10-20", "20-30", "30-40"]
    return {"video_minutes": {"bins": bins, "reference": [0.1, 0.4, 0.4, 0.1],
                              "current": [max(0.0, 0.1 - shift), 0.4 - shift, 0.4, 0.1 + 2 * shift]}}


def fabricate_archive(root: Path) -> dict:
    """Write the archive; returns the ids the tests look for."""
    ids = {}
    ids["prep"] = write_run(root, "prep", run_id(1, 0), "2026-12-04T22:00:01Z", metrics={"rows": 120},
                            artifacts={"evil.svg": HOSTILE_SVG.encode(), "curve.png": PNG},
                            notebook=hostile_notebook(), values={"outcome": "prepared 120 rows",
                                                                 "batch": {"semesters": ["2026-1"], "rows": 120}})
    big = "student,score\n" + "".join(f"s{i},{i / 7:.3f}\n" for i in range(500))
    points, ids["sweep_runs"] = [], []
    for number, c in enumerate(SWEEP_C):
        auc = 0.9 - abs(number - 2) * 0.05 + number * 0.001
        rid = write_run(root, "fit", run_id(10 + number, 1), f"2026-12-04T22:01:{10 + number:02d}Z",
                        params={"C": c, "upstream_run": ids["prep"], "penalty": "l2"},
                        metrics={"auc": auc, "log_loss": 1 - auc, "passed": 1}, upstream=[ids["prep"]],
                        values={"outcome": f"auc {auc:.3f}", "fit": {"C": c, "converged": True}},
                        artifacts={"scores.csv": big.encode()} if number == 0 else None)
        ids["sweep_runs"].append(rid)
        points.append({"point": number, "values": {"C": c}, "status": "succeeded", "run_id": rid, "cached": False,
                       "seconds": 1.2, "metrics": {"auc": auc, "log_loss": 1 - auc}, "params": {"C": c, "penalty": "l2"},
                       "note": ""})
    eight = {f"{name}_{split}": 0.5 + n / 100 for n, (name, split) in enumerate(
        (m, s) for m in ("accuracy", "roc_auc", "precision", "recall") for s in ("test", "baseline"))}
    ids["evaluate"] = write_run(root, "evaluate", run_id(30, 2), "2026-12-04T22:02:30Z", params={"threshold": 0.5},
                                metrics=eight, values={"outcome": "gate passed: roc_auc_test 0.53 >= floor 0.5 and "
                                                                  "non-inferior to the champion within 0.01; fairness "
                                                                  "bounds held for every group of every attribute"})
    ids["best"] = max(zip(points, ids["sweep_runs"], strict=True), key=lambda p: p[0]["metrics"]["auc"])[1]
    ids["sweep"] = "20261204-220100-000-5we3p0"
    (root / "sweeps").mkdir()
    (root / "sweeps" / f"{ids['sweep']}.json").write_text(json.dumps(
        {"id": ids["sweep"], "job": "fit", "metric": "auc", "goal": "maximize", "status": "finished",
         "started_at": "2026-12-04T22:01:00Z", "finished_at": "2026-12-04T22:02:00Z", "varying": ["C"],
         "points": points}))
    monitors = []
    for number, alert in enumerate((False, True, False)):
        alerts = [{"kind": "drift", "message": "2 of 3 features drifted (share 0.67 >= 0.3)"}] if alert else []
        monitors.append(write_run(
            root, "monitor", run_id(20 + number, 3 + number), f"2026-12-04T22:0{3 + number}:00Z",
            params={"psi_threshold": 0.2, "wasserstein_threshold": 0.1, "drift_share": 0.3, "model_ref": "latest"},
            metrics={"drift_share": 0.67 if alert else 0.0, "dataset_drift": int(alert)}, alerts=alerts,
            values={"outcome": "ALERT drift" if alert else "no alert", "distributions": distributions(0.2 if alert else 0)},
            artifacts={"drift_report.csv": drift_csv(alert), "feature_distributions.png": PNG}))
    ids["monitors"], ids["alerting"] = monitors, monitors[1]
    model = root / "registry" / "demo"
    model.mkdir(parents=True)
    for version, rid in ((1, ids["sweep_runs"][1]), (2, ids["best"])):
        (model / f"v{version}.json").write_text(json.dumps({"version": version, "run_id": rid, "metrics": {"auc": 0.8},
                                                            "created_at": "2026-12-04T22:02:00Z", "note": ""}))
    events = [(None, 1, "first model", "2026-12-04T22:05:30Z", None), (1, 2, "better auc", "2026-12-04T22:06:30Z", None),
              (2, 1, "rollback: latency", "2026-12-04T22:07:30Z", "e2")]
    (model / "history.jsonl").write_text("".join(json.dumps(
        {"id": f"e{i}", "name": "demo", "alias": "champion", "from_version": a, "to_version": b, "reason": why,
         "at": at, "reverts": reverts}) + "\n" for i, (a, b, why, at, reverts) in enumerate(events)))
    (model / "aliases.json").write_text(json.dumps({"champion": 1}))
    log = root / "serving" / "demo" / "requests"
    log.mkdir(parents=True)
    lines = [{"at": f"2026-12-04T22:{5 + i // 4:02d}:{(i * 13) % 60:02d}+00:00", "status": 422 if i % 5 == 0 else 200,
              "latency_ms": 3 + i % 7, "model": "demo", "model_version": 1 if i < 6 or i > 10 else 2,
              "endpoint": "/invocations", "request_id": f"r{i}"} for i in range(14)]
    (log / "segment-1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "pipelines" / "retrain").mkdir(parents=True)
    (root / "pipelines" / "retrain" / "20261204-220000.json").write_text(json.dumps(
        {"pipeline": "retrain", "started_at": "2026-12-04T22:00:00Z", "finished_at": "2026-12-04T22:02:00Z",
         "stages": [{"stage": "prep", "job": "prep", "status": "succeeded", "run_id": ids["prep"], "seconds": 1.5,
                     "cached": False, "note": ""},
                    {"stage": "fit", "job": "fit", "status": "succeeded", "run_id": ids["best"], "seconds": 4.0,
                     "cached": True, "note": "gate passed"}]}))
    return ids
