"""Time `mlkit report` on a fabricated archive: N small runs (manifest, values, a small executed notebook).

    python bench/bench_report.py [--runs 10000] [--workers 2] [--keep DIR]

Prints the time of a full build, of a rebuild with nothing changed, and of a rebuild after one new run: wall-clock
seconds, and CPU seconds of this process and of its worker processes (the fairer figure on a shared machine).
"""

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from mlkit.report import build_report

JOBS = ("ingest", "train", "evaluate", "monitor")


def small_notebook(run_id: str, lr: float, auc: float) -> str:
    "The JSON of a small executed notebook: a title, a parameters cell, a cell with printed output."
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Run {run_id}"),
                nbformat.v4.new_code_cell(f"lr = {lr}", outputs=[]),
                nbformat.v4.new_code_cell("import mlkit\nmlkit.log_metric('auc', auc)\nprint(auc)",
                                          outputs=[nbformat.v4.new_output("stream", text=f"{auc}\n")])]
    return json.dumps(nb, indent=1)  # as nbformat writes it, without validating each of 10,000 notebooks


def fabricate(root: Path, count: int, seed: int = 0):
    "Write `count` run folders into the archive at `root`; each train run consumes the last ingest run."
    rng = random.Random(seed)
    last_ingest = None
    for number in range(count):
        job = JOBS[number % len(JOBS)]
        run_id = f"20260101-{number // 60000:02d}{number // 1000 % 60:02d}{number // 10 % 100:02d}-{number % 1000:03d}-{number:06x}"
        lr, auc = rng.choice((0.01, 0.03, 0.1, 0.3)), round(rng.uniform(0.6, 0.9), 4)
        folder = root / job / run_id
        folder.mkdir(parents=True)
        manifest = {"id": run_id, "job": job, "status": "succeeded" if rng.random() > 0.05 else "failed",
                    "started_at": f"2026-01-01T00:00:{number % 60:02d}.000Z", "duration_s": round(rng.uniform(1, 9), 2),
                    "params": {"lr": lr, "seed": number % 7}, "metrics": {"auc": auc, "loss": round(1 - auc, 4)},
                    "inputs": [{"path": "data/attempts.parquet", "sha256": f"{number:064x}", "bytes": 1000}],
                    "artifacts": [], "upstream": [last_ingest] if job == "train" and last_ingest else [],
                    "alerts": [], "error": None}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        (folder / "values.json").write_text(json.dumps({"outcome": f"auc {auc}"}))
        (folder / "notebook.ipynb").write_text(small_notebook(run_id, lr, auc))
        if job == "ingest":
            last_ingest = run_id


def cpu_seconds() -> float:
    "CPU seconds used so far by this process and its finished children."
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def timed(build):
    "`(result, cpu seconds)` of `build()`."
    began = cpu_seconds()
    result = build()
    return result, cpu_seconds() - began


def add_run(work: Path, root: Path, run_id: str):
    "Add one new ingest run `run_id` to the archive at `root`."
    fabricate(work / "extra", 1, seed=1)
    shutil.move(next((work / "extra").glob("*/*")), root / "ingest" / run_id)
    shutil.rmtree(work / "extra")
    manifest = json.loads((root / "ingest" / run_id / "manifest.json").read_text())
    manifest["id"] = run_id
    (root / "ingest" / run_id / "manifest.json").write_text(json.dumps(manifest))


def fresh_build(root: Path, workers: int) -> tuple:
    "`(wall seconds, CPU seconds)` of a build in a new Python process, imports included."
    began, cpu = time.perf_counter(), cpu_seconds()
    code = f"from mlkit.report import build_report; build_report({str(root)!r}, workers={workers})"
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - began, cpu_seconds() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", help="build in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-report-"))
    root = work / "runs"
    try:
        began = time.perf_counter()
        fabricate(root, args.runs)
        print(f"fabricated {args.runs} runs in {time.perf_counter() - began:.1f} s")
        full, cpu = timed(lambda: build_report(root, workers=args.workers))
        print(f"full build:            {full.seconds:6.1f} s, {cpu:6.1f} s CPU  ({len(full.written)} pages)")
        again, cpu = timed(lambda: build_report(root, workers=args.workers))
        print(f"rebuild, no change:    {again.seconds:6.1f} s, {cpu:6.1f} s CPU  ({len(again.written)} pages written)")
        add_run(work, root, "29990101-000000-000-ffffff")
        one, cpu = timed(lambda: build_report(root, workers=args.workers))
        print(f"rebuild after one run: {one.seconds:6.1f} s, {cpu:6.1f} s CPU  ({len(one.written)} pages written: "
              f"{sorted(one.written)})")
        add_run(work, root, "29990101-000000-001-fffffe")
        seconds, cpu = fresh_build(root, args.workers)
        print(f"the same in a fresh process (as `mlkit report`): {seconds:6.1f} s, {cpu:6.1f} s CPU")
        seconds, cpu = fresh_build(root, args.workers)
        print(f"no change, fresh process: {seconds:6.1f} s, {cpu:6.1f} s CPU")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
