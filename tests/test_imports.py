"""The query path stays light: no torch, transformers or textual."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("torch", "transformers", "textual")


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cli_import_is_light():
    out = _run(
        f"""
        import json, sys
        import explorer.cli.main
        print(json.dumps({{m: m in sys.modules for m in {HEAVY!r} + ("numpy", "duckdb", "faiss")}}))
        """
    )
    assert not any(out.values()), out  # --help needs none of them


def test_query_on_existing_index_imports_no_torch(tiny_root):
    out = _run(
        f"""
        import json, sys
        from typer.testing import CliRunner
        from explorer.cli.main import app
        r = CliRunner().invoke(app, ["--root", {str(tiny_root)!r}, "query", "woman - man + king",
                                     "--model", "tiny-llama", "--expect", "queen", "--json"])
        assert r.exit_code == 0, r.output
        r2 = CliRunner().invoke(app, ["--root", {str(tiny_root)!r}, "neighbours", "xyz", "--multi", "average",
                                      "--model", "tiny-llama", "--json"])
        assert r2.exit_code == 0, r2.output
        print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))
        """
    )
    assert not any(out.values()), out
