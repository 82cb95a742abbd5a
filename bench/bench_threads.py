"""What giving each kernel its share of the cores buys when models train side by side.

    python bench/bench_threads.py [POINTS] [--samples N]

A sweep of POINTS (default 6) scikit-learn HistGradientBoosting fits (OpenMP inside) runs with `mlkit sweep run
--max-workers <cores>` twice in one run of this script: as mlkit runs it (each kernel gets cores // workers OpenMP
and BLAS threads), and with `OMP_NUM_THREADS` set to the number of cores (what every kernel would start without
mlkit's share: one thread per core each). Prints seconds for both, the ratio, and checks that both sweeps found
the same metrics (the thread count must not change results).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

MLKIT = str(Path(sys.executable).with_name("mlkit"))
JOB = ("import mlkit\n"
       "from sklearn.datasets import make_classification\n"
       "from sklearn.ensemble import HistGradientBoostingClassifier\n"
       "X, y = make_classification(n_samples=samples, n_features=20, random_state=seed)\n"
       "model = HistGradientBoostingClassifier(max_iter=200, random_state=seed).fit(X, y)\n"
       "mlkit.log_metric('accuracy', float(model.score(X, y)))")


def make_project(root: Path, samples: int) -> Path:
    "A project with one job, `hgb`, whose parameters are `seed` and `samples`."
    (root / "pyproject.toml").write_text('[tool.mlkit]\njobs = "jobs"\nparams = "params"\narchive = "runs"\n')
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell(f"seed = 0\nsamples = {samples}")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(JOB)]
    (root / "jobs").mkdir()
    nbformat.write(nb, root / "jobs" / "hgb.ipynb")
    return root


def sweep(root: Path, points: int, workers: int, env: dict) -> tuple:
    "Run the sweep with `env`; seconds and the metrics by seed."
    seeds = ",".join(str(seed) for seed in range(1, points + 1))
    started = time.perf_counter()
    result = subprocess.run([MLKIT, "sweep", "run", "hgb", "--grid", f"seed={seeds}", "--max-workers", str(workers),
                             "--force", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=3600,
                            check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"sweep failed ({result.returncode}): {result.stderr[-2000:]}")
    table = json.loads(result.stdout)
    return seconds, {row["params"]["seed"]: row["metrics"]["accuracy"] for row in table["points"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("points", nargs="?", type=int, default=6)
    parser.add_argument("--samples", type=int, default=20_000, help="rows per fit (default 20000)")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS", "MLKIT_ARCHIVE")}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as folder:
        root = make_project(Path(folder), args.samples)
        shared, shared_metrics = sweep(root, args.points, cores, base)
        crowded, crowded_metrics = sweep(root, args.points, cores, {**base, "OMP_NUM_THREADS": str(cores)})
    print(f"cores: {cores}; {args.points} HistGradientBoosting fits of {args.samples} rows, {cores} at a time")
    print(f"mlkit sweep, each kernel its share of the cores   {shared:8.2f} s")
    print(f"every kernel one OpenMP thread per core           {crowded:8.2f} s")
    print(f"ratio shared / crowded                             {shared / crowded:8.2f}x")
    print("same metrics both ways:", "yes" if shared_metrics == crowded_metrics else
          f"NO ({shared_metrics} vs {crowded_metrics})")


if __name__ == "__main__":
    main()
