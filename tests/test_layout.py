"""The package's shape: every project import resolves, including those inside functions."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("embeddings", "ui", "tests")
SOURCES = sorted(
    p
    for folder in ("embeddings", "ui", "pages", "tests", "benchmarks", "scripts")
    for p in (REPO / folder).rglob("*.py")
) + [REPO / "app.py", REPO / "serve.py"]


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_imports(path: Path):
    """(line, module, names) of every import of a project module in ``path``, at any depth."""
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] in OURS:
                yield node.lineno, module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    yield node.lineno, alias.name, []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_project_import_resolves(path):
    """A moved module or name is found at once, not when a rarely used function first runs."""
    broken = []
    for line, module, names in _project_imports(path):
        try:
            target = importlib.import_module(module)
        except ImportError as exc:
            broken.append(f"line {line}: {module} ({exc})")
            continue
        for name in names:
            if hasattr(target, name):
                continue
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                broken.append(f"line {line}: {module} has no {name}")
    assert not broken, broken
