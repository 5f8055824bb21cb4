"""The layers (docs/architecture.md): scripts -> agents -> jaxcpn, solvers; what may import what."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jaxcpn", "agents", "solvers")


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at_top)`` of every import in ``path``; ``at_top`` = outside any function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.extend((f"{child.module}.{a.name}", not in_function) for a in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


def package_imports(package: str) -> dict[str, list[tuple[str, bool]]]:
    return {str(p.relative_to(ROOT)): imports(p) for p in sorted((ROOT / package).rglob("*.py"))}


def top(name: str) -> str:
    return name.split(".")[0]


def test_imports_are_parsed():
    """The checker sees imports at module top and inside functions (so the rules below can fail)."""
    found = dict(package_imports("jaxcpn"))["jaxcpn/mec/env.py"]
    assert ("jaxcpn.mec.model", True) in found
    assert any(top(m) == "solvers" and not at_top for m, at_top in found)


def test_jaxcpn_imports_no_agents_and_solvers_only_lazily():
    for path, found in package_imports("jaxcpn").items():
        for module, at_top in found:
            assert top(module) != "agents", f"{path} imports {module}: environments must not depend on agents"
            assert not (top(module) == "solvers" and at_top), (
                f"{path} imports {module} at module top: jaxcpn reaches solvers only inside functions")


def test_solvers_import_no_agents_and_nothing_imports_scripts():
    for path, found in package_imports("solvers").items():
        for module, _ in found:
            assert top(module) not in ("agents", "scripts"), f"{path} imports {module}"
    for package in PACKAGES:
        for path, found in package_imports(package).items():
            for module, _ in found:
                assert top(module) not in ("scripts", "benchmarks", "tests"), f"{path} imports {module}"


def test_agents_of_one_system_do_not_import_the_other():
    for system, other in (("stper", "ttosc"), ("ttosc", "stper")):
        for path, found in package_imports(f"agents/{system}").items():
            for module, _ in found:
                assert not module.startswith(f"agents.{other}"), f"{path} imports {module}"


def test_scripts_are_thin_and_do_not_edit_sys_path():
    for path in sorted((ROOT / "scripts").rglob("*.py")):
        text = path.read_text()
        assert "sys.path" not in text, f"{path.relative_to(ROOT)} edits sys.path"
        assert len(text.splitlines()) <= 200, f"{path.relative_to(ROOT)} is over 200 lines"


@pytest.mark.timeout(120)
def test_importing_the_environments_loads_no_agent_or_solver():
    code = ("import sys, jaxcpn, jaxcpn.cpn, jaxcpn.mec, jaxcpn.data, jaxcpn.wrappers; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'agents', 'solvers', 'cvxpy'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
