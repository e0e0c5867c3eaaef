"""No import cycle anywhere in gate/, counting what import-linter's layers do not: imports inside
functions, under TYPE_CHECKING, and a submodule importing its own package (``from gate.metrics
import agent`` runs ``gate/metrics/__init__.py`` first)."""

from __future__ import annotations

import ast
from pathlib import Path

GATE = Path(__file__).resolve().parents[1] / "gate"


def modules() -> dict[str, Path]:
    found = {}
    for path in GATE.rglob("*.py"):
        parts = list(path.relative_to(GATE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(found: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            edges[name] |= {t for t in targets if t in found and t != name}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the path that closes it; None when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(edges[node]):
            if (found := visit(target, [*path, node])) is not None:
                return found
        done.add(node)
        return None

    for start in sorted(edges):
        if (found := visit(start, [])) is not None:
            return found
    return None


def test_gate__has_no_import_cycle() -> None:
    assert cycle(imports(modules())) is None


def test_cycle__is_found_when_a_submodule_imports_its_package() -> None:
    edges = {"gate.metrics": {"gate.metrics.failures"}, "gate.metrics.failures": {"gate.metrics"}}
    assert cycle(edges) == ["gate.metrics", "gate.metrics.failures", "gate.metrics"]
