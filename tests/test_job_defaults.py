"""Every job notebook runs top to bottom on its defaults, as in JupyterLab: a real kernel, no runner."""

import nbformat
from conftest import REPO
from nbclient import NotebookClient

from mlkit.kernels import THIS_ENVIRONMENT, kernel_manager, stop_kernel

JOBS = ["ingest", "check", "train", "evaluate", "promote", "monitor", "example", "replay"]


def test_job_notebooks_run_on_their_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_ARCHIVE", str(tmp_path / "archive"))  # jobs that need runs create them here
    monkeypatch.delenv("MLKIT_RUN_DIR", raising=False)  # not under the runner: records go to a scratch folder
    jobs_dir = REPO / "nbs" / "jobs"
    for name in JOBS:
        nb = nbformat.read(jobs_dir / f"{name}.ipynb", as_version=4)
        manager = kernel_manager(THIS_ENVIRONMENT)
        client = NotebookClient(nb, km=manager, timeout=600, resources={"metadata": {"path": str(jobs_dir)}})
        try:
            client.execute()  # raises CellExecutionError naming the cell if any cell fails
        finally:
            stop_kernel(manager)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, (name, errors)
    promoted = (tmp_path / "archive" / "registry" / "edtech")
    assert promoted.is_dir(), "the promote job registered the evaluated model"
