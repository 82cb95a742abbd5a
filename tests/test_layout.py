"""The generic core apart from the EdTech example: no core import of it, plugins through entry points."""

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

CORE = sorted(p for p in (REPO / "mlkit").glob("*.py") if p.name != "_modidx.py")


def test_core_modules_never_import_the_example():
    for module in CORE:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            assert not any("edtech" in name for name in names), f"{module.name} imports {names}"
    modules = [f"mlkit.{p.stem}" for p in CORE if p.stem != "__init__"]
    check = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
             "print(sorted(m for m in sys.modules if m.startswith('mlkit.edtech')))")
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_a_registered_model_loads_without_the_example(project):
    project.job("fit", "n: int = 40", """
import numpy as np, tempfile
from pathlib import Path
from sklearn.linear_model import LogisticRegression
import mlkit
from mlkit.models import save_model
rng = np.random.default_rng(0)
X = rng.normal(size=(n, 3)); y = (X[:, 0] > 0).astype(int)
model = LogisticRegression().fit(X, y)
mlkit.log_metric("accuracy", model.score(X, y))
mlkit.log_metric("separation", 0.25)
with tempfile.TemporaryDirectory() as folder:
    save_model(model, Path(folder) / "model.skops")
    mlkit.log_artifact(Path(folder) / "model.skops")
mlkit.log_outcome("fitted a line")
""")
    run = project.run_json("fit", check=0)
    project.mlkit("models", "register", "lines", "--run", run["id"], check=0)
    listing = project.mlkit("models", "list", check=0).stdout
    assert "accuracy=1" in listing and "separation=0.25" in listing and "roc_auc" not in listing
    listed = json.loads(project.mlkit("models", "list", "--json", check=0).stdout)
    assert listed[0]["metrics"] == {"accuracy": 1.0, "separation": 0.25}
    check = ("import sys\nfrom mlkit.archive import Archive\nfrom mlkit.registry import Registry, load\n"
             f"model = load(Registry(Archive({str(project.archive)!r})), 'lines:1')\n"
             "print(model.predict([[1, 0, 0]])[0], sorted(m for m in sys.modules if 'edtech' in m))")
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert loaded.stdout.split(maxsplit=1) == ["1", "[]\n"]


def test_pipeline_prints_what_jobs_decided_without_knowing_them(project):
    project.job("make", "count: int = 3", "import mlkit\nmlkit.log_outcome(f'made {count} things')")
    project.job("judge", "source: str = ''",
                "import mlkit\nmlkit.log_alert('quality', 'two things are crooked')")
    pipeline = project.root / "params" / "pipeline.yaml"
    pipeline.write_text("name: things\nstages:\n  - {name: make, job: make}\n"
                        "  - {name: judge, job: judge, upstream: {source: make}}\n")
    result = project.mlkit("pipeline", "run", check=0)
    assert "made 3 things" in result.stdout and "ALERT quality: two things are crooked" in result.stdout
    assert "champion" not in result.stdout and "models history" not in result.stdout
    status = json.loads(project.mlkit("pipeline", "status", "--json", check=0).stdout)
    assert [s["note"] for s in status["stages"]] == ["made 3 things", "ALERT quality: two things are crooked"]
    pipeline.write_text("name: things\nmodel_name: 5\nstages:\n  - {name: make, job: make}\n")
    assert "model_name must be a model's name" in project.mlkit("pipeline", "run", check=2).stderr


def _fake_distribution(folder: Path, name: str, module_source: str, entry_points: str):
    "A package `name` installed only as far as importlib.metadata sees it: a module and a dist-info folder."
    (folder / f"{name}.py").write_text(module_source)
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_packages_add_commands_through_entry_points(project, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _fake_distribution(site, "shoutplugin", '''
from mlkit.cli import command_group


def command_hello(args):
    print(f"hello {args.name}")
    return 0


def command_export(args):
    print("exported")
    return 0


def add_commands(commands):
    hello = commands.add_parser("hello", help="greet")
    hello.add_argument("--name", default="world")
    hello.set_defaults(handler=command_hello)
    export = command_group(commands, "data", "datasets").add_parser("export", help="export data")
    export.set_defaults(handler=command_export)
''', "[mlkit.commands]\nshout = shoutplugin:add_commands\n")
    _fake_distribution(site, "brokenplugin", "raise ImportError('a missing dependency')\n",
                       "[mlkit.commands]\nbroken = brokenplugin:add_commands\n")
    env = {"PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    hello = project.mlkit("hello", "--name", "mlkit", env=env, check=0)
    assert hello.stdout == "hello mlkit\n"
    assert ("mlkit.commands plugin 'broken' (brokenplugin:add_commands, package brokenplugin) left out: ImportError: "
            "a missing dependency") in hello.stderr
    assert project.mlkit("data", "export", env=env, check=0).stdout == "exported\n"
    data_help = project.mlkit("data", "--help", env=env, check=0).stdout
    for command in ("generate", "ingest", "export"):
        assert command in data_help
    assert "hello" not in project.mlkit("--help", check=0).stdout


def test_model_files_saved_before_the_move_still_load(tmp_path):
    script = f"""
from pathlib import Path
from mlkit.edtech.data import LABEL, generate
from mlkit.edtech.models import build_model
from mlkit.edtech.privacy import ingest
from mlkit.fingerprint import sha256_file
from mlkit.models import _renamed_schema, save_model
data = ingest(generate(80, seed=1), key=b"k")
model = build_model("logistic_regression").fit(data, data[LABEL])
save_model(model, Path({str(tmp_path)!r}) / "new.skops")
old = _renamed_schema((Path({str(tmp_path)!r}) / "new.skops").read_bytes(),
                      {{"mlkit.edtech.models.LearningFeatures": "mlkit.models.LearningFeatures"}})
(Path({str(tmp_path)!r}) / "old.skops").write_bytes(old)
print(sha256_file(Path({str(tmp_path)!r}) / "old.skops"))
"""
    sha = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(tmp_path / "old.skops") as old:
        schema = old.read("schema.json").decode()
    assert '"__class__": "LearningFeatures", "__module__": "mlkit.models"' in schema
    load = ("from mlkit.models import load_model\n"
            f"model = load_model({str(tmp_path / 'old.skops')!r}, sha256={sha!r})\n"
            "print(type(model.named_steps['features']).__module__)")
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "mlkit.edtech.models"
    site = tmp_path / "site"  # a package whose model-type declaration fails to load is left out, with a warning
    site.mkdir()
    _fake_distribution(site, "brokentypes", "raise ImportError('a missing dependency')\n",
                       "[mlkit.model_types]\nbroken = brokentypes:MODEL_TYPES\n")
    env = {**os.environ, "PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, env=env, check=True)
    assert loaded.stdout.strip() == "mlkit.edtech.models"
    assert ("mlkit.model_types plugin 'broken' (brokentypes:MODEL_TYPES, package brokentypes) left out: ImportError"
            in loaded.stderr)
