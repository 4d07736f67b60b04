"""The import graph of clipcite's own modules, read from the source (ast; imports at module
level, inside functions and under `if TYPE_CHECKING`), against the layering in the README:
ui -> assistant, ingestion; assistant -> retrieval <- ingestion; no cycles between modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("assistant", "retrieval", "ingestion", "ui", "prompts", "eval", "tests")
INSTALLED = ("assistant", "retrieval", "ingestion", "ui", "prompts")
NAMESPACE = "clipcite."  # the installed folders' import name (pyproject.toml maps them)

# What each layer may not import. ui may import every layer; eval (development scripts) and
# tests are not installed, so nothing installed imports them.
FORBIDDEN = {
    "retrieval": {"assistant", "ingestion", "ui", "eval", "tests"},
    "ingestion": {"assistant", "ui", "eval", "tests"},
    "assistant": {"ingestion", "ui", "eval", "tests"},
    "ui": {"eval", "tests"},
    "prompts": {"assistant", "retrieval", "ingestion", "ui", "eval", "tests"},
}

def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ours that `module` imports: `from a import b` is a.b when that is a
    module, else a; `import a.b.c` is the longest of a.b.c, a.b, a that is a module."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name.removeprefix(NAMESPACE) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "").removeprefix(NAMESPACE)
            if node.level:  # relative: from the package holding this module
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        else:
            continue
        for name in names:
            target = known(name)
            if target and target != module:
                yield target


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: set(_imported(m, p, modules)) for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_walk_sees_the_imports(graph: dict[str, set[str]]) -> None:
    # Module level, inside a function, and `from package import module`.
    assert "ui.settings" in graph["ui.cli"] and "ui.web.app" in graph["ui.cli"]
    assert "retrieval.tools" in graph["ui.cli"]  # `from retrieval import tools`
    assert "retrieval.assembled" in graph["assistant.local_model"]
    assert "retrieval.assembled" in graph["ingestion.models"]


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    found = [sorted(c) for c in cycles(graph)]
    assert found == [], f"modules that import each other (directly or around a loop): {found}"


def test_layers(graph: dict[str, set[str]]) -> None:
    wrong = [f"{m} imports {t}" for m, targets in sorted(graph.items())
             for t in sorted(targets) if t.split(".")[0] in FORBIDDEN.get(m.split(".")[0], ())]
    assert wrong == [], "imports against the layering (README, How it works):\n" + "\n".join(wrong)


def test_our_folders_are_imported_by_their_one_name() -> None:
    # From a checkout `ui` is importable bare too: a bare import would load a second copy of
    # a module (a second cache of loaded models) beside clipcite.ui's.
    bare = []
    for module, path in _modules().items():
        if path.name == "make_legacy_index.py":  # runs an older commit's code on purpose
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            bare += [f"{module}: {n}" for n in names if n.split(".")[0] in INSTALLED]
    assert bare == []
