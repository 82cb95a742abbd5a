"""Commands that execute nothing import nothing of the execution stack: a cache hit, `runs list/show`, `params`,
`--help` and `import mlkit` load neither papermill, nor nbformat (and its validator), nor jupyter_client."""

import json
import subprocess
import sys

HEAVY = ("papermill", "nbformat", "nbformat.validator", "jsonschema", "jupyter_client", "nbclient", "zmq")
PROBE = """
import json, sys
from mlkit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps([name for name in {heavy!r} if name in sys.modules]), file=sys.stderr)
"""


def loaded_by(project, *args) -> list:
    """The modules of HEAVY that `mlkit ARGS`, run in a fresh interpreter in `project`, imported."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *map(str, args)], cwd=project.root,
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stderr.strip().splitlines()[-1])


def test_paths_that_execute_nothing_import_no_execution_stack(project):
    project.job("square", "x: int = 2", "import mlkit\nmlkit.log_metric('y', x * x)")
    first = project.run_json("square", check=0)
    assert first["cached"] is False
    assert loaded_by(project, "run", "square") == []  # a cache hit
    hit = project.run_json("square", check=0)
    assert hit["cached"] is True and hit["id"] == first["id"]
    assert loaded_by(project, "runs", "list") == []
    assert loaded_by(project, "runs", "show", first["id"]) == []
    assert loaded_by(project, "params", "square") == []
    assert loaded_by(project, "--help") == []
    imported = subprocess.run([sys.executable, "-c", ("import json, sys, mlkit; "
                               f"print(json.dumps([n for n in {HEAVY!r} if n in sys.modules]))")],
                              capture_output=True, text=True, check=True)
    assert json.loads(imported.stdout) == []


RUN_PROBE = """
import json, sys
import mlkit.kernels
from mlkit.cli import main
seen = {}
start_kernel = mlkit.kernels.start_kernel
def recording(*args, **kwargs):
    seen["papermill loaded at launch"] = "papermill" in sys.modules
    return start_kernel(*args, **kwargs)
mlkit.kernels.start_kernel = recording
code = main(sys.argv[1:])
seen.update(code=code, papermill="papermill" in sys.modules, pyarrow="pyarrow" in sys.modules)
print(json.dumps(seen), file=sys.stderr)
"""


def test_a_run_launches_its_kernel_first_and_loads_papermill_without_remote_stores(project):
    project.job("square", "x: int = 2", "import mlkit\nmlkit.log_metric('y', x * x)")
    result = subprocess.run([sys.executable, "-c", RUN_PROBE, "run", "square", "--force"], cwd=project.root,
                            capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(result.stderr.strip().splitlines()[-1])
    assert seen == {"papermill loaded at launch": False, "code": 0, "papermill": True, "pyarrow": False}
