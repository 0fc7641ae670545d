"""The project's modules and what each imports, read from the source (every import, late ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("adapterops", "cli", "tasks", "flows")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every module of the project's packages."""
    return {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
            for package in PACKAGES for p in (root / package).rglob("*.py")}


def imported_names(path: Path) -> set[str]:
    """Every absolute module name a file imports, and `module.name` for each `from module import name`."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return targets


def module_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Project module → the project modules importing it runs: the ones it names and, as Python does, the
    `__init__` of each package above them that is not a package of its own (`tasks.evaluate.run` importing
    `tasks.model.generate` runs `tasks.model` first, which imports the model stage's face)."""
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        if path.name == "__init__.py":
            own.add(name)
        targets = set()
        for target in imported_names(path):
            parts = target.split(".")
            targets |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)}
        graph[name] = {t for t in targets if t in files and t != name and t not in own}
    return graph
