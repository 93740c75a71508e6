"""The CLI's edges: the data root and backend resolved once, unwritable outputs, the
safety net for bugs, usage errors as one line, honest help, and bad vector files."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from clitools import one_line_error, run, runner
from explorer.cli.main import app
from explorer.cli.rootgroup import reflow
from explorer.store.catalog import Catalog


def invoke(*args, **kw):
    return runner.invoke(app, list(args), **kw)


# -- the data root and the backend ----------------------------------------------------


class _FakeApp:
    def __init__(self, seen: dict, root, backend, **kw):
        seen.update(root=root, backend=backend, **kw)

    def run(self):
        pass


@pytest.mark.parametrize("with_env", [True, False])
def test_tui_without_root_gets_a_real_data_root(monkeypatch, tmp_path, with_env):
    import explorer.paths
    import explorer.tui.app

    seen: dict = {}
    monkeypatch.setattr(explorer.tui.app, "make_app", lambda root, backend, **kw: _FakeApp(seen, root, backend, **kw))
    home = tmp_path / "home"
    if with_env:
        monkeypatch.setenv("EXPLORER_HOME", str(home))
    else:
        monkeypatch.delenv("EXPLORER_HOME", raising=False)
        monkeypatch.setattr(explorer.paths, "default_root", lambda: home)
    r = invoke("tui")
    assert r.exit_code == 0, r.stderr
    assert seen["root"] == home and seen["backend"] == "auto"


def test_root_naming_a_file_is_one_line(tmp_path):
    f = tmp_path / "catalog.txt"
    f.write_text("not a directory")
    line = one_line_error(invoke("--root", str(f), "sql", "SELECT 1"), 2)
    assert "--root" in line and "not a directory" in line


@pytest.mark.parametrize("backend", ["bogus", "", "cuda"])
def test_unknown_backend_is_one_line(tiny_root, backend):
    line = one_line_error(run(tiny_root, "--backend", backend, "query", "king", "--model", "tiny-llama"), 2)
    assert "--backend" in line and "numpy" in line


def test_known_backends_are_accepted(tiny_root):
    for backend in ("auto", "numpy", "faiss", "NumPy"):
        r = run(tiny_root, "--backend", backend, "neighbours", "king", "--model", "tiny-llama", "--json")
        assert r.exit_code == 0, (backend, r.stderr)


# -- explorer sql outputs ---------------------------------------------------------------


def _bad_outputs(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return {"directory": tmp_path, "missing folder": tmp_path / "no" / "such" / "out.x",
            "folder is a file": a_file / "out.x"}


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "table"])
@pytest.mark.parametrize("kind", ["directory", "missing folder", "folder is a file"])
def test_sql_output_that_cannot_be_written_is_one_line(tiny_root, tmp_path, fmt, kind):
    out = _bad_outputs(tmp_path)[kind]
    line = one_line_error(run(tiny_root, "sql", "SELECT token_id FROM tokens", "-f", fmt, "-o", str(out)))
    assert "cannot write" in line
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a folder no file can be created in)")
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sql_output_refused_by_the_system_is_one_line(tiny_root, fmt):
    line = one_line_error(run(tiny_root, "sql", "SELECT 1 AS x", "-f", fmt, "-o", f"/proc/explorer-test.{fmt}"))
    assert "cannot write" in line


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root may write anywhere")
def test_sql_output_without_permission_is_one_line(tiny_root, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = one_line_error(run(tiny_root, "sql", "SELECT 1 AS x", "-f", "csv", "-o", str(locked / "x.csv")))
    finally:
        locked.chmod(0o700)
    assert "permission" in line


def test_csv_lines_end_with_newline_only(tiny_root, tmp_path):
    query = "SELECT token_id, text FROM tokens ORDER BY token_id LIMIT 3"
    r = run(tiny_root, "sql", query, "-f", "csv")
    assert r.exit_code == 0, r.stderr
    assert "\r" not in r.stdout and r.stdout.count("\n") == 4
    out = tmp_path / "t.csv"
    assert run(tiny_root, "sql", query, "-f", "csv", "-o", str(out)).exit_code == 0
    data = out.read_bytes()
    assert b"\r" not in data and data.count(b"\n") == 4


# -- bugs and usage errors --------------------------------------------------------------


def _boom(*a, **kw):
    raise TypeError("boom [x]")


def test_an_unexpected_exception_is_one_line(tiny_root, monkeypatch):
    import explorer.services.sql

    monkeypatch.delenv("EXPLORER_DEBUG", raising=False)
    monkeypatch.setattr(explorer.services.sql, "run_sql", _boom)
    line = one_line_error(run(tiny_root, "sql", "SELECT 1"), 1)
    assert "internal error (TypeError: boom [x])" in line and "EXPLORER_DEBUG=1" in line


def test_debug_shows_the_traceback(tiny_root, monkeypatch):
    import explorer.services.sql

    monkeypatch.setenv("EXPLORER_DEBUG", "1")
    monkeypatch.setattr(explorer.services.sql, "run_sql", _boom)
    r = run(tiny_root, "sql", "SELECT 1")
    assert r.exit_code == 1 and isinstance(r.exception, TypeError)


def test_interrupt_in_a_command_is_one_line(tiny_root, monkeypatch):
    import explorer.services.sql

    def interrupt(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(explorer.services.sql, "run_sql", interrupt)
    assert "interrupted" in one_line_error(run(tiny_root, "sql", "SELECT 1"), 130)


@pytest.mark.parametrize(
    "args, word",
    [
        (["query", "king", "--top", "abc"], "--top"),
        (["query", "king", "-k", "0"], "--top"),
        (["sql", "SELECT 1", "--bogus"], "--bogus"),
        (["index", "verify", "--full=true"], "--full"),
        (["nosuchcommand"], "nosuchcommand"),
        (["query"], "EXPRESSION|expression"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tiny_root, args, word):
    line = one_line_error(run(tiny_root, *args), 2)
    assert re.search(word, line), line


def test_usage_error_points_to_the_command_help(tiny_root):
    line = one_line_error(run(tiny_root, "query", "king", "--top", "abc"), 2)
    assert "explorer query --help" in line


def test_help_and_no_arguments_still_work():
    r = invoke("query", "--help")
    assert r.exit_code == 0 and "Usage" in r.stdout
    r = invoke("vectors")
    assert "Usage" in r.stdout and "Traceback" not in r.stdout + r.stderr


# -- help -------------------------------------------------------------------------------


def _all_commands():
    from test_cli import _commands

    return list(_commands(app))


@pytest.mark.parametrize("columns", ["60", "200"])
def test_flags_show_no_value_placeholder(columns):
    for name, _ in _all_commands():
        r = invoke(*name.split(), "--help", env={"COLUMNS": columns})
        assert r.exit_code == 0, name
        assert "<bool>" not in r.stdout, name


def test_command_help_paragraphs_are_reflowed():
    for name, cmd in _all_commands():
        for paragraph in (cmd.help or "").split("\n\n"):
            assert paragraph.startswith("\b") or "\n" not in paragraph, (name, paragraph)
    r = invoke("query", "--help", env={"COLUMNS": "200"})
    (line,) = [x for x in r.stdout.splitlines() if "Shows the top answers" in x]
    assert "with --expect d" in line  # the docstring breaks the line before it


def test_reflow_keeps_paragraphs_blocks_and_bullets():
    text = """First line
    continues here.

    Second paragraph
    over two lines.

    \b
    kept   as
    written

    - one bullet
      continued
    - two

    code:
        indented block
    \f
    hidden
    text"""
    assert reflow(text) == (
        "First line continues here.\n\nSecond paragraph over two lines.\n\n\b\nkept   as\nwritten\n\n"
        "- one bullet continued\n- two\n\ncode:\n    indented block\n\f\nhidden\ntext"
    )
    assert reflow(None) is None and reflow("") == ""


# -- bad vector files -------------------------------------------------------------------


def _model_count(root: Path) -> int:
    cat = Catalog(root)
    return len(cat.models()) if cat.exists() else 0


@pytest.mark.parametrize("kind", ["binary", "empty", "missing", "directory", "truncated", "nan", "wrong header"])
@pytest.mark.parametrize("fmt", ["auto", "word2vec", "word2vec-binary", "glove", "parquet"])
def test_bad_vector_files_are_one_line_and_change_nothing(tiny_root, tmp_path, kind, fmt):
    path = tmp_path / "vectors.txt"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        path.write_text("3 2\na 1 2\nb 3")
    elif kind == "nan":
        path.write_text("2 2\na 1 nan\nb 3 4\n")
    elif kind == "wrong header":
        path.write_text("two 2\na 1 2\n")
    before = _model_count(tiny_root)
    r = run(tiny_root, "vectors", "import", str(path), "--format", fmt, "--name", "bad-file")
    one_line_error(r)
    assert _model_count(tiny_root) == before


@pytest.mark.parametrize("where", ["file", "system"])
def test_export_to_a_path_that_cannot_be_written_is_one_line(tiny_root, tmp_path, where):
    if where == "file":
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        out = blocker / "sub" / "out.txt"
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc")
        out = Path("/proc/explorer-test-out.txt")
    line = one_line_error(run(tiny_root, "vectors", "export", "--model", "tiny-llama", "-o", str(out)))
    assert "cannot write" in line
