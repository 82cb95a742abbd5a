"""Shared fixtures: a throwaway mlkit project, notebook builders and a CLI runner."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

# `pytest -n 2` runs two tests at once on two cores; a kernel training a model with two OpenMP threads beside
# another one spins for the core they share (a 30 s test took 185 s). One thread each, inherited by every kernel.
os.environ.setdefault("OMP_NUM_THREADS", "1")

MLKIT = str(Path(sys.executable).with_name("mlkit"))
REPO = Path(__file__).resolve().parent.parent
# A deployment with real students sets a secret pseudonym key; tests that ingest a data file pass this one
# explicitly (mlkit refuses such a file without a key). Generated data keeps the development key, as for users.
TEST_PSEUDONYM_KEY = {"MLKIT_PSEUDONYM_KEY": "mlkit-tests-pseudonym-key-not-secret"}


def make_notebook(path, parameters=None, *cells, kernelspec=True):
    """Write a notebook: an optional `parameters` cell (source text) followed by code cells."""
    nb = nbformat.v4.new_notebook()
    if kernelspec:
        nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


class Project:
    """A temporary mlkit project: pyproject.toml with [tool.mlkit], jobs/, params/, runs/."""

    def __init__(self, root: Path):
        self.root = root
        (root / "pyproject.toml").write_text('[tool.mlkit]\njobs = "jobs"\nparams = "params"\narchive = "runs"\n')
        (root / "jobs").mkdir()
        (root / "params").mkdir()
        self.archive = root / "runs"

    def job(self, name, parameters=None, *cells, **options):
        return make_notebook(self.root / "jobs" / f"{name}.ipynb", parameters, *cells, **options)

    def mlkit(self, *args, env=None, cwd=None, timeout=120, check=None):
        """Run the `mlkit` command in the project; returns the CompletedProcess."""
        full_env = {k: v for k, v in os.environ.items() if k != "MLKIT_ARCHIVE"}
        full_env.update(env or {})
        result = subprocess.run([MLKIT, *map(str, args)], cwd=cwd or self.root, env=full_env, text=True,
                                capture_output=True, timeout=timeout, check=False)
        if check is not None:
            assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def run_json(self, *args, **kwargs) -> dict:
        """`mlkit run ... --json` and the manifest it prints."""
        result = self.mlkit("run", *args, "--json", **kwargs)
        return json.loads(result.stdout)

    def run_folders(self, job=None):
        pattern = f"{job or '*'}/*/manifest.json"
        return sorted(p.parent for p in self.archive.glob(pattern) if not p.parent.parent.name.startswith("."))


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path)
