"""Benchmark `mlkit run` against papermill on the same trivial notebook, `import mlkit` against papermill, and a
run-cache hit against papermill executing the notebook.

Prints medians and ratios (mlkit / papermill) measured in one run, rounds interleaved so that machine noise hits
both sides alike. The last line gives papermill the import fix that mlkit's command applies (see nbs/cli/50_cli.ipynb),
for a like-for-like comparison of the runners themselves. Then a per-phase breakdown of one forced `mlkit run`
(medians): importing the execution stack, the kernel's boot (launch to first cell, overlapping the imports),
executing the cells, and archiving. Usage: python bench/bench_run.py [ROUNDS]
"""

import json
import compileall
import statistics
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
    print(f"{label:<34} mlkit {ours_median:6.3f} s   papermill {theirs_median:6.3f} s   ratio {ratio:6.3f}x")
    return ratio


# Runs one forced `mlkit run` in a fresh interpreter, timing its phases from inside: the imports of papermill and
# jupyter_client (wrapped), the kernel's launch (wrapped), and the cells' start and end times papermill records.
PHASE_PROBE = r"""
import json, sys, time
from datetime import datetime
import mlkit.kernels, mlkit.runner
began, marks = time.time(), {"imports": 0.0}

def timed(owner, name, label=None, at=None):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.time()
        if at:
            marks[at] = start
        try:
            return original(*args, **kwargs)
        finally:
            if label:
                marks[label] += time.time() - start
    setattr(owner, name, wrapper)

timed(mlkit.runner, "import_papermill", "imports")
timed(mlkit.kernels, "kernel_manager", "imports")
timed(mlkit.kernels, "start_kernel", at="launched")
run = mlkit.runner.run(sys.argv[1], cli_params=[("x", "2")], archive=sys.argv[2], force=True)
returned = time.time()
cells = [c["metadata"]["papermill"] for c in json.loads((run.path / "notebook.ipynb").read_text())["cells"]]
first = datetime.fromisoformat(cells[0]["start_time"].replace("Z", "+00:00")).timestamp()
last = datetime.fromisoformat(cells[-1]["end_time"].replace("Z", "+00:00")).timestamp()
print(json.dumps({"imports": marks["imports"], "launch after": marks["launched"] - began,
                  "kernel boot": first - marks["launched"], "execution": last - first, "archiving": returned - last}))
"""


def phases(notebook: Path, archive: Path, rounds: int) -> dict:
    """Median seconds of each phase of a forced `mlkit run` of `notebook`, over `rounds` fresh processes."""
    samples = [json.loads(subprocess.run([sys.executable, "-c", PHASE_PROBE, str(notebook), str(archive)],
                                         check=True, capture_output=True, text=True).stdout) for _ in range(rounds)]
    return {name: statistics.median(sample[name] for sample in samples) for name in samples[0]}


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
        shown = "   ".join(f"{name} {seconds:.3f} s" for name, seconds in phases(notebook, tmp / "runs", rounds).items())
        print(f"phases of one mlkit run (medians): {shown}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
