"""Imports point one way between our packages (README, "Dependencies point one way"), and no module reaches
itself through its own imports.

Rules:
1. Every ``import`` in the source tree is an edge, at module level or inside a function: a lazy import is
   still a dependency, only a later one.
2. An import under ``if TYPE_CHECKING:`` is a type-only edge. It must point the right way too, but it never
   runs, so the cycle check leaves it out.
3. A module belongs to the layer of the longest ``RULES`` key it starts with; it may import its own layer
   and the prefixes that key lists, nothing else of ours. Third-party imports are not looked at here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("product_models", "scenes", "vision", "ar_server", "client_panda3d", "fixlens")
# Layer -> what else of ours it may import.
RULES: dict[str, tuple[str, ...]] = {
    "product_models": (),
    "scenes": ("product_models",),
    "vision": ("product_models",),
    # The errors module is a leaf with no imports of its own: the wire layer shares its base exception.
    "ar_server.protocol": ("ar_server.errors",),
    "ar_server": ("vision", "scenes", "product_models"),
    "client_panda3d": ("product_models", "scenes", "ar_server.protocol"),
    "fixlens": ("product_models", "scenes", "vision", "ar_server", "client_panda3d"),
}
# Wrong-way edges tolerated for a while, by layer: each is an expected failure until it is removed (strict: the
# entry must go when the edge does). None today.
KNOWN_WRONG_WAY: dict[str, str] = {}


@dataclass(frozen=True)
class Edge:
    importer: str  # dotted module name
    imported: str  # dotted name of the module imported, or of the nearest package of ours that exists
    path: Path
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`

    def where(self, root: Path) -> str:
        kind = " (type-only)" if self.type_only else ""
        return f"{self.path.relative_to(root)}:{self.line}: {self.importer} -> {self.imported}{kind}"


def find_modules(root: Path, packages: Sequence[str]) -> dict[str, Path]:
    """Dotted name -> file, for every ``.py`` file under ``root/<package>``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in ``tree``, and whether it sits under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from _imports(node, type_only)


def _nearest(name: str, modules: Mapping[str, Path]) -> str:
    """``name`` if it is one of ``modules``, else its nearest enclosing one (a name defined in a package)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def find_edges(root: Path, packages: Sequence[str]) -> list[Edge]:
    """Every import of one of ``packages`` by a module under them (rules 1 and 2)."""
    modules = find_modules(root, packages)
    edges = []
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        for node, type_only in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = importer.split(".")
                    if not is_package:
                        anchor = anchor[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from a import b`: b is a module of a, or a name a defines.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in dict.fromkeys(targets):
                if target.split(".")[0] in packages:
                    edges.append(Edge(importer, _nearest(target, modules), path, node.lineno, type_only))
    return edges


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str, rules: Mapping[str, Sequence[str]]) -> str | None:
    matches = [key for key in rules if _within(module, key)]
    return max(matches, key=len) if matches else None


def wrong_way(edges: Sequence[Edge], rules: Mapping[str, Sequence[str]]) -> list[Edge]:
    """The edges rule 3 forbids, and those from a module no rule covers."""
    out = []
    for edge in edges:
        layer = layer_of(edge.importer, rules)
        if layer is None or not any(_within(edge.imported, p) for p in (layer, *rules[layer])):
            out.append(edge)
    return out


@dataclass(frozen=True)
class Cycle:
    modules: list[str]  # a strongly connected group: each reaches every other through runtime imports
    example: list[Edge]  # the shortest cycle through the first of them

    def describe(self, root: Path) -> str:
        path = " -> ".join([self.example[0].importer, *(edge.imported for edge in self.example)])
        return (f"{', '.join(self.modules)}; for example {path}:\n"
                + "\n".join("    " + edge.where(root) for edge in self.example))


def find_cycles(edges: Sequence[Edge]) -> list[Cycle]:
    """Each strongly connected group of modules under runtime imports (rule 2), with one cycle through it;
    empty when the imports form no cycle."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        if not edge.type_only and edge.importer != edge.imported:
            graph.setdefault(edge.importer, {}).setdefault(edge.imported, edge)
    # Tarjan's strongly connected components, iteratively: deep import chains must not hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return [Cycle(group, _cycle_in(group, graph)) for group in sorted(groups)]


def _cycle_in(group: list[str], graph: Mapping[str, Mapping[str, Edge]]) -> list[Edge]:
    """The shortest cycle through ``group[0]`` inside ``group`` (breadth first)."""
    members, start = set(group), group[0]
    came_from: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child, edge in sorted(graph.get(node, {}).items()):
                if child not in members or child in came_from:
                    continue
                came_from[child] = edge
                if child == start:
                    path = [edge]
                    while path[0].importer != start:
                        path.insert(0, came_from[path[0].importer])
                    return path
                following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan said there is one


# ---------------------------------------------------------------- the checker itself


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_wrong_way_edges_and_cycles(tmp_path: Path) -> None:
    _write(tmp_path, {
        "low/__init__.py": "",
        "low/base.py": "import os\n\ndef later():\n    from high import top\n",  # wrong way, inside a function
        "low/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from high.top import Thing\n",
        "high/__init__.py": "",
        "high/top.py": "from low import base\nfrom . import middle\nThing = 1\n",
        "high/middle.py": "def f():\n    from .top import Thing\n",  # closes high.top -> high.middle -> high.top
        "high/hint.py": "import typing\nif typing.TYPE_CHECKING:\n    import high.top\nelse:\n    import low.typed\n",
    })
    rules = {"low": (), "high": ("low",)}
    edges = find_edges(tmp_path, ("low", "high"))
    assert {(e.importer, e.imported, e.type_only) for e in edges} == {
        ("low.base", "high.top", False), ("low.typed", "high.top", True), ("high.top", "low.base", False),
        ("high.top", "high.middle", False), ("high.middle", "high.top", False), ("high.hint", "high.top", True),
        ("high.hint", "low.typed", False)}
    assert [(e.where(tmp_path)) for e in wrong_way(edges, rules)] == [
        "low/base.py:4: low.base -> high.top", "low/typed.py:3: low.typed -> high.top (type-only)"]
    cycles = find_cycles(edges)
    assert [cycle.modules for cycle in cycles] == [["high.middle", "high.top", "low.base"]]
    assert cycles[0].describe(tmp_path).splitlines() == [
        "high.middle, high.top, low.base; for example high.middle -> high.top -> high.middle:",
        "    high/middle.py:2: high.middle -> high.top", "    high/top.py:2: high.top -> high.middle"]


def test_checker_leaves_type_only_cycles_and_clean_trees_alone(tmp_path: Path) -> None:
    _write(tmp_path, {
        "low/__init__.py": "from low.a import A\n",
        "low/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from low.b import B\nA = 1\n",
        "low/b.py": "from low.a import A\nB = A\n",
    })
    edges = find_edges(tmp_path, ("low",))
    assert wrong_way(edges, {"low": ()}) == [] and find_cycles(edges) == []
    assert wrong_way(edges, {"other": ()}) == edges  # a module no rule covers is reported


# ---------------------------------------------------------------- the source tree


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return find_edges(ROOT, PACKAGES)


def test_every_package_of_ours_is_checked() -> None:
    found = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert found == set(PACKAGES), "a top-level package needs its place in PACKAGES and RULES"


def test_every_module_has_a_layer() -> None:
    assert [name for name in find_modules(ROOT, PACKAGES) if layer_of(name, RULES) is None] == []


@pytest.mark.parametrize("layer", [
    pytest.param(layer, marks=pytest.mark.xfail(reason=KNOWN_WRONG_WAY[layer], strict=True))
    if layer in KNOWN_WRONG_WAY else layer for layer in RULES])
def test_imports_point_one_way(layer: str, edges: list[Edge]) -> None:
    bad = [e for e in wrong_way(edges, RULES) if layer_of(e.importer, RULES) == layer]
    allowed = ", ".join(RULES[layer]) or "nothing"
    if bad:
        pytest.fail(f"{layer} may import only itself and {allowed}:\n" + "\n".join(e.where(ROOT) for e in bad))


def test_the_server_never_imports_the_tools_or_the_client(edges: list[Edge]) -> None:
    """The demo and the e2e bench lived in ar_server and imported client_panda3d (and each other)."""
    bad = [e for e in edges if _within(e.importer, "ar_server")
           and any(_within(e.imported, p) for p in ("fixlens", "client_panda3d"))]
    if bad:
        pytest.fail("\n".join(e.where(ROOT) for e in bad))


def test_no_import_cycles(edges: list[Edge]) -> None:
    cycles = find_cycles(edges)
    if cycles:
        pytest.fail("import cycles:\n" + "\n".join(c.describe(ROOT) for c in cycles))
