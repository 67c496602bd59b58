"""Imports point one way (docs: shell -> campaigns -> graph -> core; connectors -> core)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELL_DIRS = ("scrm/cli/", "scrm/web/")
SHELL = {"scrm/demo.py", "scrm/__main__.py"}
FORBIDDEN = {
    "scrm": {"connectors", "graph", "campaigns"},
    "connectors": {"graph", "campaigns"},
    "graph": {"connectors", "campaigns"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str) -> None:
    files = [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    assert files
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in SHELL or rel.startswith(SHELL_DIRS):
            continue
        wrong = _imports(path) & FORBIDDEN[package]
        assert not wrong, f"{rel} imports {sorted(wrong)}"
