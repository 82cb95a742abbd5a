"""Benchmark `mlkit run` against papermill on the same trivial notebook, `import mlkit` against papermill, and a
run-cache hit against papermill executing the notebook.

Prints medians and ratios (mlkit / papermill) measured in one run, rounds interleaved so that machine noise hits
both sides alike. The last line gives papermill the import fix that mlkit's command applies (see nbs/cli/50_cli.ipynb),
for a like-for-like comparison of the runners themselves. Usage: python bench/bench_run.py [ROUNDS]
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

BIN = Path(sys.executable).parent


def trivial_notebook(path: Path) -> Path:
    """A notebook with a parameters cell and one small computation."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell("x = 1")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell("y = x * 2\nprint(y)")]
    nbformat.write(nb, path)
    return path


def timed(command: list) -> float:
    """Seconds `command` takes; it must succeed."""
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - began


def compare(label: str, ours: list, theirs: list, rounds: int) -> float:
    """Run both commands `rounds` times, interleaved; print and return the ratio of medians."""
    ours_times, theirs_times = [], []
    for _ in range(rounds):
        theirs_times.append(timed(theirs))
        ours_times.append(timed(ours))
    ours_median, theirs_median = statistics.median(ours_times), statistics.median(theirs_times)
    ratio = ours_median / theirs_median
    print(f"{label:<34} mlkit {ours_median:6.3f} s   papermill {theirs_median:6.3f} s   ratio {ratio:5.2f}x")
    return ratio


def main(rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        notebook = trivial_notebook(tmp / "trivial.ipynb")
        python = sys.executable
        print(f"rounds: {rounds} (medians)")
        compare("run trivial notebook (CLI to CLI)",
                [str(BIN / "mlkit"), "run", str(notebook), "-p", "x", "2", "--archive", str(tmp / "runs"),
                 "--force"],
                [str(BIN / "papermill"), str(notebook), str(tmp / "out.ipynb"), "-p", "x", "2"], rounds)
        compare("import", [python, "-c", "import mlkit"], [python, "-c", "import papermill"], rounds)
        # The run above is now archived: the same command is a cache hit (no kernel), papermill executes again.
        compare("cache hit vs papermill executing",
                [str(BIN / "mlkit"), "run", str(notebook), "-p", "x", "2", "--archive", str(tmp / "runs")],
                [str(BIN / "papermill"), str(notebook), str(tmp / "out.ipynb"), "-p", "x", "2"], rounds)
        # papermill given the same import fix mlkit's CLI applies (rfc3987_syntax blocked): the like-for-like figure.
        blocked_papermill = [python, "-c", ("import sys; sys.modules['rfc3987_syntax'] = None; "
                             "sys.argv[0] = 'papermill'; from papermill.cli import papermill; papermill()"),
                             str(notebook), str(tmp / "out2.ipynb"), "-p", "x", "2"]
        compare("run, papermill with the same fix",
                [str(BIN / "mlkit"), "run", str(notebook), "-p", "x", "2", "--archive", str(tmp / "runs"),
                 "--force"],
                blocked_papermill, rounds)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
