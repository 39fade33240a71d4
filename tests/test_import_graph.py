"""The package's import graph: every module of ``probe/`` imports, and no import cycle exists between
top-level parts of the package (``probe.tokenizers``, ``probe.data``, ``probe.cli``, ...) nor between the
modules inside one of them. Every import counts, also those inside functions (a lazy import is still a
dependency), except those under ``if TYPE_CHECKING:`` (annotations only, never executed) and a package's
implicit import of its ``__init__``."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "probe"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ``probe`` that ``name`` (a dotted import target) is, or lies in; None outside ``probe``."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _walk(node: ast.AST):
    """``ast.walk`` without the bodies of ``if TYPE_CHECKING:`` blocks (their ``else`` branches are walked)."""
    for child in ast.iter_child_nodes(node):
        test = child.test if isinstance(child, ast.If) else None
        if test is not None and "TYPE_CHECKING" in ast.unparse(test):
            for sub in child.orelse:
                yield sub
                yield from _walk(sub)
            continue
        yield child
        yield from _walk(child)


def _imports(module: str) -> set[str]:
    """Modules of ``probe`` imported anywhere in ``module``'s source (relative imports resolved)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from probe.x import y`: y is a module when probe.x.y exists, else a name defined in probe.x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in map(_resolve, targets) if t is not None and t != module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _part(module: str) -> str:
    """Top-level part of the package a module belongs to (``probe`` itself for probe/__init__.py)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_finds_a_planted_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None


def test_graph_sees_lazy_and_from_imports_not_type_checking_ones() -> None:
    # probe/cli.py imports its commands inside functions; probe/clip/__init__.py re-exports from its modules
    assert "probe.clip.model" in GRAPH["probe.clip"]
    assert any(m.startswith("probe.commands") for m in GRAPH["probe.cli"])
    tree = ast.parse("import probe.store\nif TYPE_CHECKING:\n    import probe.tokenizers.base\nelse:\n    import probe.device\n"
                     "def f():\n    from probe import zoo\n")
    seen = {a.name if isinstance(n, ast.Import) else f"{n.module}.{a.name}"
            for n in _walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert seen == {"probe.store", "probe.device", "probe.zoo"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def _part_graph() -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for mod, deps in GRAPH.items():
        a = _part(mod)
        parts.setdefault(a, set()).update(b for b in map(_part, deps) if b != a)
    return parts


def test_no_cycle_between_parts_of_the_package() -> None:
    cycle = _find_cycle(_part_graph())
    assert cycle is None, f"import cycle between parts of probe: {' -> '.join(cycle)}"


def test_no_cycle_inside_a_part() -> None:
    for part in sorted({_part(m) for m in GRAPH}):
        inner = {m: {d for d in deps if _part(d) == part} for m, deps in GRAPH.items() if _part(m) == part}
        cycle = _find_cycle(inner)
        assert cycle is None, f"import cycle inside {part}: {' -> '.join(cycle)}"


# --------------------------------------------------------------------------------------------- worlds
#: packages that must work for any data: they reach a world only through the registry ``probe.worlds``
GENERIC = ("probe.swap", "probe.measure", "probe.optimize", "probe.pipeline")
#: the modules of one world: its bundle (``probe/worlds/<name>.py``) and the attribute world's renderer
WORLD_MODULES = {m for m in MODULES if m.startswith("probe.worlds.")} | {"probe.data.world", "probe.data.world_cache"}
#: generic modules that still render the attribute world directly (fidelity's nearest-shape reading; to move
#: behind the registry); a module may leave this list, never join it
RENDERS_THE_WORLD = {"probe.measure.fidelity"}


def _generic(module: str) -> bool:
    return any(module == g or module.startswith(g + ".") for g in GENERIC)


def test_world_modules_are_seen() -> None:
    assert "probe.worlds.attribute" in WORLD_MODULES and "probe.worlds" not in WORLD_MODULES
    # the swap engine learns a store's world (circular factors, masks) from the registry
    assert "probe.worlds" in GRAPH["probe.swap.run"]


def test_generic_packages_import_no_world_module() -> None:
    bad = {m: sorted(GRAPH[m] & WORLD_MODULES) for m in GRAPH if _generic(m) and GRAPH[m] & WORLD_MODULES}
    bundles = {m: [d for d in deps if d.startswith("probe.worlds.")] for m, deps in bad.items()}
    assert not any(bundles.values()), f"generic modules import a world module (use probe.worlds.get): {bundles}"
    assert set(bad) <= RENDERS_THE_WORLD, f"generic modules render the world directly: {bad}"
