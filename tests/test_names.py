"""Names by role: no two public classes or functions of the program share a name.

The front ends are left out (a command's callback may carry its service's name), and so
are the members of the experiment contract that every experiment module defines
(``Config``, ``points``, ``run``, ``summarize``: see experiments/base.py). A name
re-exported by a service (``from explorer.lens.runner import check_position``) is one
definition, not two.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "explorer"
FRONT = ("cli", "tui")
CONTRACT = {"Config", "points", "run", "summarize"}  # each experiment module's own


def _definitions(root: Path) -> dict[str, list[str]]:
    """Public top-level classes, functions and type aliases (``Name = Callable[...]``) by name."""
    found: dict[str, list[str]] = defaultdict(list)
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root.parent)
        if rel.parts[1] in FRONT:
            continue
        is_experiment = rel.parts[1] == "experiments"
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            names = []
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):  # a type alias
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            for name in names:
                if name.startswith("_") or (is_experiment and name in CONTRACT):
                    continue
                found[name].append(str(rel))
    return found


def test_public_names_are_unique():
    twice = {name: where for name, where in _definitions(ROOT).items() if len(where) > 1}
    assert not twice, "public names defined more than once:\n" + "\n".join(f"{n}: {', '.join(w)}" for n, w in sorted(twice.items()))


def test_one_default_model():
    literal = '"gemma3-270m"'
    holders = [str(f.relative_to(ROOT.parent)) for f in ROOT.rglob("*.py") if literal in f.read_text(encoding="utf-8")]
    assert holders == ["explorer/core/types.py"], holders


def test_the_check_sees_a_duplicate(tmp_path):
    pkg = tmp_path / "explorer"
    for sub in ("store", "query"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "a.py").write_text("class Vectors:\n    pass\n\nProgress = Callable[[str], None]\n")
    found = _definitions(pkg)
    assert len(found["Vectors"]) == 2 and len(found["Progress"]) == 2
