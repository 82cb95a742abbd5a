"""Benchmark `mlkit sweep` against a sequential loop of `papermill` CLI calls over the same 16 points.

Two notebooks: a trivial one (kernel start-up dominates) and a small scikit-learn one. For each, the papermill
loop (plain CLI, then with the import fix mlkit's own command applies, see bench_run.py: the like-for-like figure) and `mlkit sweep run --max-workers N` (N = 1, 2, 4, ... up to the number of cores) run the same points, in one
run of this script; it prints seconds, points per second and the ratio mlkit / papermill. Every mlkit sweep uses
`--force`, so every point really executes. Each mlkit line is followed by the same sweep with kernel
launch-ahead turned off (through the Python API), to show what starting the next kernel early buys.
Usage: python bench/bench_sweep.py [POINTS]
"""

import compileall
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

BIN = Path(sys.executable).parent
# papermill is measured as pip installed it, with its bytecode; mlkit, installed editable from the source tree,
# gets the same (PYTHONDONTWRITEBYTECODE=1 in the environment would otherwise recompile it in every process).
compileall.compile_dir(Path(__file__).resolve().parent.parent / "mlkit", quiet=1)
FIXED_PAPERMILL = ("import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'papermill'; "
                   "from papermill.cli import papermill; papermill()")
NOTEBOOKS = {
    "trivial": ("x = 1", "y = x * 2\nprint(y)"),
    "sklearn": ("x = 1",
                ("from sklearn.datasets import make_classification\n"
                 "from sklearn.linear_model import LogisticRegression\n"
                 "from sklearn.model_selection import cross_val_score\n"
                 "X, y = make_classification(n_samples=400, n_features=10, random_state=0)\n"
                 "score = cross_val_score(LogisticRegression(C=0.05 * x, max_iter=500), X, y, cv=3).mean()\n"
                 "print(score)")),
}


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A notebook with a `parameters` cell and one code cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


NO_LAUNCH_AHEAD = """
import sys
import mlkit
from mlkit.executors import LocalExecutor
job, points, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with LocalExecutor(workers, launch_ahead=False) as pool:
    result = mlkit.sweep(job, grid={"x": list(range(1, points + 1))}, executor=pool, force=True)
assert not result.failed
"""


def timed(commands: list, cwd: Path) -> float:
    """Seconds the `commands`, run one after the other, take; each must succeed."""
    began = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True, cwd=cwd)
    return time.perf_counter() - began


def worker_counts() -> list:
    """1, 2, 4, ... up to the number of cores (and the core count itself)."""
    cores, counts, n = os.cpu_count() or 1, [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return [*counts, cores]


def bench(root: Path, job: str, points: int) -> None:
    """Print the papermill loop and the mlkit sweeps of `points` points of job `job`."""
    values = list(range(1, points + 1))
    notebook = root / "jobs" / f"{job}.ipynb"
    loop = [[str(BIN / "papermill"), str(notebook), str(root / f"out-{job}.ipynb"), "-p", "x", str(x)]
            for x in values]
    papermill = timed(loop, root)
    print(f"{job}: {points} points   papermill loop {papermill:6.2f} s  {points / papermill:5.2f} points/s")
    fixed = [[sys.executable, "-c", FIXED_PAPERMILL, *command[1:]] for command in loop]
    papermill_fixed = timed(fixed, root)
    print(f"{job}: {points} points   papermill+fix  {papermill_fixed:6.2f} s  {points / papermill_fixed:5.2f} points/s")
    for workers in worker_counts():
        sweep = [str(BIN / "mlkit"), "sweep", "run", job, "--grid", "x=" + ",".join(map(str, values)), "--force",
                 "--max-workers", str(workers), "--json"]
        seconds = timed([sweep], root)
        print(f"{job}: {points} points   mlkit sweep x{workers:<3}  {seconds:6.2f} s  {points / seconds:5.2f} points/s"
              f"   ratio {seconds / papermill:5.2f}x  (vs papermill+fix {seconds / papermill_fixed:5.2f}x)")
        cold = [sys.executable, "-c", NO_LAUNCH_AHEAD, job, str(points), str(workers)]
        cold_seconds = timed([cold], root)
        print(f"{job}: {points} points   ... without launch-ahead  {cold_seconds:6.2f} s"
              f"   launch-ahead saves {1 - seconds / cold_seconds:4.0%}")


def main(points: int = 16) -> None:
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pyproject.toml").write_text('[tool.mlkit]\njobs = "jobs"\nparams = "params"\narchive = "runs"\n')
        (root / "jobs").mkdir()
        for job, (parameters, body) in NOTEBOOKS.items():
            write_notebook(root / "jobs" / f"{job}.ipynb", parameters, body)
        for job in NOTEBOOKS:
            bench(root, job, points)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
