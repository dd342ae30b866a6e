"""The airlock (and the DP service it verifies receipts with) has no import cycle: every import,
at module level or inside a function, read with ``ast`` from the source."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("enclave.airlock", "enclave.dp_service")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        folder = ROOT.joinpath(*package.split("."))
        for path in folder.glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_airlock_has_no_import_cycle():
    graph = import_graph()
    assert cycles(graph) == []
    assert "enclave.airlock.verification" in graph["enclave.airlock.checking"]  # the graph is read at all


def test_snapshot_integrity_and_the_gate_call_live_in_one_module():
    graph = import_graph()
    for user in ("enclave.airlock.checking", "enclave.airlock.publishing"):
        assert "enclave.airlock.verification" in graph[user]
    assert not graph["enclave.airlock.verification"] & {
        "enclave.airlock.checking", "enclave.airlock.publishing", "enclave.airlock.requests", "enclave.airlock.reviews"}
    assert not any(m.startswith("enclave.airlock") for m in graph["enclave.dp_service.receipts"])
