"""The import graph of mlkit: no cycle (imports inside functions counted too), and nothing outside the CLI imports it."""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlkit"
LOADED_BY_NAME = re.compile(r"(mlkit(?:\.\w+)+):\w+")  # "module:function", loaded with importlib
# Edges that point up into the CLI and are accepted: none.
KNOWN_UPWARD = set()


def module_name(path: Path, package: Path = PACKAGE) -> str:
    "The dotted name of the module in file `path` of `package`."
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, name: str, is_package: bool) -> set:
    "The dotted names imported anywhere in `tree` (top level, functions, classes), relative ones resolved."
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_package else name.split(".")[:-1]
            if node.level:
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            found.update(f"{stem}.{alias.name}" for alias in node.names)  # `from mlkit import pipeline`
            found.add(stem)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LOADED_BY_NAME.fullmatch(node.value):
            found.add(node.value.split(":")[0])
    return found


def import_graph(package: Path = PACKAGE) -> dict:
    "Each module of `package`, mapped to the modules of it that it imports."
    files = {module_name(path, package): path for path in package.rglob("*.py")}
    root = package.name
    graph = {}
    for name, path in files.items():
        names = imported_names(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
        # The root `__init__` is the public facade (`import mlkit`): it imports the API from the modules, and Python has
        # always run it before any module of the package, so an import of the root (`mlkit.__version__`) is no edge.
        graph[name] = {target for target in names if target in files and target not in (name, root)}
    return graph


def find_cycle(graph: dict) -> list | None:
    "One cycle of `graph` as a list of modules (first repeated at the end), or None."
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def is_cli(name: str) -> bool:
    "True for a command-line module: `mlkit.cli`, `mlkit.cli_*`, `mlkit.cli.*`, or a plug-in's `cli` module."
    return any(part == "cli" or part.startswith("cli_") for part in name.split(".")[1:])


def test_graph_sees_relative_and_nested_imports(tmp_path):
    (tmp_path / "mlkit").mkdir()
    (tmp_path / "mlkit" / "__init__.py").write_text("")
    (tmp_path / "mlkit" / "a.py").write_text("from .b import x\nCHECKS = {'c': 'mlkit.c:check'}\n")
    (tmp_path / "mlkit" / "c.py").write_text("")
    (tmp_path / "mlkit" / "b.py").write_text("import mlkit\n\n\ndef f():\n    from mlkit import a\n")
    graph = import_graph(tmp_path / "mlkit")
    assert graph["mlkit.a"] == {"mlkit.b", "mlkit.c"} and graph["mlkit.b"] == {"mlkit.a"}
    assert find_cycle(graph) == ["mlkit.a", "mlkit.b", "mlkit.a"]


def test_no_import_cycle():
    graph = import_graph()
    for name, target in KNOWN_UPWARD:
        graph[name].discard(target)
    assert len(graph) > 40
    assert find_cycle(graph) is None


@pytest.mark.parametrize("name", ["mlkit.cli", "mlkit.cli_data", "mlkit.cli.runs", "mlkit.edtech.cli"])
def test_cli_names(name):
    assert is_cli(name)


def test_only_the_cli_imports_the_cli():
    graph = import_graph()
    assert not is_cli("mlkit.client") and not is_cli("mlkit.archive")
    upward = sorted((name, target) for name, targets in graph.items() if not is_cli(name)
                    for target in targets if is_cli(target))
    assert set(upward) == KNOWN_UPWARD
