"""The package structure: layers, imports only pointing down, no cycles, thin front ends.

The same graph as ``../shared/tools/layering.py`` (lazy imports inside functions count),
with stricter rules: every package has a rank, a package imports only packages of its own
rank or below, the graph has no cycle, and the front ends import nothing but the service
layer and the foundations. The README's layout section states the same order.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "explorer"

# rank: a package may import from its own rank and the ranks below, never above
RANKS = {
    "explorer": 0, "errors": 0, "paths": 0, "jsonsafe": 0, "core": 0, "data": 0,  # foundations (data: bundled files)
    "query": 1,  # pure math (numpy)
    "store": 2,  # DuckDB catalog and repositories, FAISS, files
    "models": 3,  # model access (torch, transformers)
    "lens": 4, "experiments": 4, "viz": 4,  # capabilities
    "services": 5,  # one module per user operation
    "cli": 6, "tui": 6,  # front ends
    "__main__": 7,
}
FRONT = {"cli", "tui"}
FOUNDATIONS = {u for u, r in RANKS.items() if r == 0}
# the one sideways import between front ends: the `explorer tui` command launches the app
LAUNCH = {("cli", "tui", "explorer/cli/tui.py")}
HEAVY = ("duckdb", "faiss", "torch", "transformers", "textual", "numba")
# where each heavy library may be imported (textual: the TUI only)
HEAVY_HOME = {
    "duckdb": {"store"},
    "faiss": {"store"},
    "torch": {"models", "lens", "experiments"},
    "transformers": {"models", "lens", "experiments"},
    "textual": {"tui"},
    "numba": {"experiments"},  # the word2vec kernel (optional extra 'fast')
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "explorer"


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, nested ones included."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
    return out


def _graph() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in ROOT.rglob("*.py"):
        src = _unit(_module(f))
        for name, line in _imports(f):
            if name == "explorer" or name.startswith("explorer."):
                dst = _unit(name)
                if dst != src:
                    edges[(src, dst)].append(f"{f.relative_to(ROOT.parent)}:{line}")
    return edges


def test_every_package_has_a_rank():
    units = {_unit(_module(f)) for f in ROOT.rglob("*.py")}
    assert units <= set(RANKS), f"packages without a layer: {sorted(units - set(RANKS))}"


def test_imports_only_point_down():
    upward = [
        f"{s} (rank {RANKS[s]}) -> {d} (rank {RANKS[d]}) at {where[0]}"
        for (s, d), where in _graph().items()
        if RANKS[d] > RANKS[s]
    ]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_no_package_cycle():
    adj: dict[str, set[str]] = defaultdict(set)
    for s, d in _graph():
        adj[s].add(d)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            u = todo.pop()
            if u == goal:
                return True
            if u not in seen:
                seen.add(u)
                todo.extend(adj[u])
        return False

    cycles = sorted({tuple(sorted((s, d))) for s, d in _graph() if reaches(d, s)})
    assert not cycles, f"package cycles through: {cycles}"


def test_front_ends_import_only_services_and_foundations():
    bad = []
    for (s, d), where in _graph().items():
        if s not in FRONT or d in FOUNDATIONS or d == "services":
            continue
        rest = [w for w in where if (s, d, w.split(":")[0]) not in LAUNCH]
        if rest:
            bad.append(f"{s} -> {d} ({len(rest)}x, e.g. {rest[0]})")
    assert not bad, "front ends reaching past the service layer:\n" + "\n".join(bad)


def test_heavy_libraries_live_in_their_layers():
    bad = []
    for f in ROOT.rglob("*.py"):
        unit = _unit(_module(f))
        for name, line in _imports(f):
            lib = name.split(".")[0]
            if lib in HEAVY_HOME and unit not in HEAVY_HOME[lib]:
                bad.append(f"{lib} imported by {f.relative_to(ROOT.parent)}:{line}")
    assert not bad, "\n".join(bad)


def test_the_checks_catch_a_violation(tmp_path, monkeypatch):
    """The rules are not vacuous: a store module importing the service layer is caught."""
    pkg = tmp_path / "explorer"
    for sub in ("store", "services"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "bad.py").write_text("def f():\n    from explorer.services import engine\n")
    (pkg / "services" / "ok.py").write_text("from ..store import bad\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg)
    edges = _graph()
    assert ("store", "services") in edges and ("services", "store") in edges
    try:
        test_imports_only_point_down()
    except AssertionError as exc:
        assert "store (rank 2) -> services (rank 5)" in str(exc)
    else:
        raise AssertionError("an upward import was not caught")
