"""The codebase's shape, measured: which package may import which, and function length."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 70


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, function-local imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_registry_stands_alone():
    for path in python_files("registry"):
        wrong = imported_packages(path) & {"ftray", "serving"}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_serving_depends_on_ftray_and_never_the_reverse():
    """Serving adds its commands to `ftray` through an entry point; ftray names it nowhere."""
    for path in python_files("ftray"):
        assert "serving" not in imported_packages(path), f"{path.relative_to(ROOT)}"


@pytest.mark.parametrize("package", ["ftray", "registry", "serving"])
def test_no_function_is_longer_than_a_screen(package):
    long = []
    for path in python_files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, long


def test_the_driver_side_never_imports_the_worker_loop():
    """Only the worker entry points (Ray Train's, and `ftray.local`'s) load the loop."""
    entry_points = {"train.py", "local.py", "loop.py"}
    for path in python_files("ftray"):
        if path.name in entry_points:
            continue
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "ftray.loop" not in modules, f"{path.relative_to(ROOT)} imports the worker loop"
