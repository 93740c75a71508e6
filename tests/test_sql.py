"""`explorer sql` and `explorer schema`: answers, output formats, the sandbox, two processes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest
from typer.testing import CliRunner

from explorer.cli.main import app

runner = CliRunner()


def sql(root, *args):
    return runner.invoke(app, ["--root", str(root), "sql", *args])


def test_query_formats(tiny_root, tmp_path):
    r = sql(tiny_root, "SELECT token_id, text FROM tokens WHERE raw = '▁king'", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == [{"token_id": 4, "text": " king"}]
    r = sql(tiny_root, "SELECT script, count(*) AS n FROM tokens GROUP BY script ORDER BY script", "-f", "csv")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["script", "n"] and dict(rows[1:])["cyrillic"] == "2"
    out = tmp_path / "t.parquet"
    r = sql(tiny_root, "SELECT token_id, text, leading_space FROM tokens ORDER BY token_id", "-f", "parquet", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    back = duckdb.sql(f"SELECT count(*), min(token_id), max(token_id) FROM '{out}'").fetchall()[0]
    assert back == (31, 0, 30)
    r = sql(tiny_root, "SELECT model, vector_sets, tokens FROM model_summary")
    assert r.exit_code == 0 and "tiny-llama" in r.stdout and "input, output" in r.stdout


@pytest.mark.parametrize(
    "query, word",
    [
        ("COPY (SELECT 1) TO '/tmp/explorer-test-copy.csv'", "files outside"),
        ("SELECT * FROM read_csv('/etc/passwd')", "files outside"),
        ("ATTACH '/tmp/explorer-test-attach.db' AS x", "files outside"),
        ("INSTALL httpfs", "files outside|extensions"),
        ("LOAD httpfs", "files outside|extensions"),
        ("DROP TABLE tokens", "read-only"),
        ("DELETE FROM models", "read-only"),
        ("SET enable_external_access = true", "locked"),
    ],
)
def test_hostile_sql_is_refused_in_one_line(tiny_root, query, word):
    import re

    r = sql(tiny_root, query)
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(word, lines[0]), r.stderr
    assert "--write" in lines[0]
    assert sql(tiny_root, "SELECT count(*) FROM tokens", "-f", "json").stdout.strip().endswith("]")


def test_write_flag_allows_changes(tiny_model_dir, tmp_path):
    from explorer.models.export import export_model

    root = tmp_path / "root"
    export_model(str(tiny_model_dir), root)
    r = sql(root, "CREATE TABLE notes AS SELECT 1 AS x", "--write")
    assert r.exit_code == 0, r.stderr
    assert json.loads(sql(root, "SELECT x FROM notes", "-f", "json").stdout) == [{"x": 1}]


def test_schema_lists_tables_views_and_descriptions(tiny_root):
    r = runner.invoke(app, ["--root", str(tiny_root), "schema", "--json"])
    assert r.exit_code == 0, r.stderr
    objs = {o["name"]: o for o in json.loads(r.stdout)}
    for name in ("models", "vector_sets", "tokens", "files", "states", "lens_runs", "hidden_states", "model_summary"):
        assert objs[name]["description"], name
    assert {c["name"] for c in objs["tokens"]["columns"]} >= {"token_id", "raw", "text", "script"}
    assert runner.invoke(app, ["--root", str(tiny_root), "schema", "nope"]).exit_code != 0


def test_reader_and_writer_processes_together(tiny_model_dir, tmp_path):
    """One process keeps writing (exports of many small corpora), another keeps querying."""
    from explorer.models.export import export_model

    root = tmp_path / "root"
    export_model(str(tiny_model_dir), root)
    n_corpora = 6
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from explorer.services.states import export_states
        for i in range({n_corpora}):
            export_states("tiny-llama", Path({str(root)!r}), prompts=["king queen man woman", f"water fire {{i}}"] * 5,
                          name=f"c{{i}}", batch_size=1)
        """)], stderr=subprocess.PIPE, text=True)
    seen, errors = [], []
    deadline = time.monotonic() + 240
    while writer.poll() is None and time.monotonic() < deadline:
        p = subprocess.run([sys.executable, "-m", "explorer", "--root", str(root), "sql",
                            "SELECT count(*) AS n FROM states", "-f", "json"], capture_output=True, text=True)
        if p.returncode != 0:
            errors.append(p.stderr)
        else:
            seen.append(json.loads(p.stdout)[0]["n"])
    assert writer.wait(timeout=60) == 0, writer.stderr.read()[-2000:]
    assert not errors, errors[:2]
    assert len(seen) >= 3  # the reader really ran while the writer worked
    assert seen == sorted(seen)  # readers see committed progress only, never going back
    final = json.loads(sql(root, "SELECT count(*) AS n, count(DISTINCT corpus_id) AS c FROM states", "-f", "json").stdout)[0]
    assert final["c"] == n_corpora and final["n"] > 0  # the writer lost nothing
