"""Data that looks like Rich markup is shown as written, in the CLI and the TUI: a token
``[multimodal]`` must not vanish as an unknown style tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clitools import runner
from explorer.cli.main import app as cli

# words Rich (and Textual) would read as markup, or whose escaping is lossy (a backslash)
MARKED = ["[multimodal]", "[b]bold[/b]", "[red]", "back\\", "[/]", "\\[x]"]


def run(root, *args):
    """The CLI at 200 columns: the assertions below look for whole words, so no wrapping."""
    return runner.invoke(cli, ["--root", str(root), *args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def marks_root(tmp_path_factory) -> Path:
    from explorer.store.interchange import import_file

    root = tmp_path_factory.mktemp("marks-root")
    words = [*MARKED, "plain", "other"]
    rng = np.random.default_rng(0)
    base = rng.normal(size=8)
    lines = [" ".join([w, *(f"{x:.6f}" for x in base + 0.1 * rng.normal(size=8))]) for w in words]
    src = root / "marks.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_file(root, src, name="marks", fmt="glove")
    return root


def test_sql_table_shows_markup_like_cells(marks_root):
    r = run(marks_root, "sql", "SELECT token_id, raw FROM tokens ORDER BY token_id")
    assert r.exit_code == 0, r.stderr
    for word in MARKED:
        assert word in r.stdout, word


def test_sql_column_names_are_shown_as_written(marks_root):
    r = run(marks_root, "sql", 'SELECT 1 AS "[b]x"')
    assert r.exit_code == 0 and "[b]x" in r.stdout


def test_query_heading_and_tables_show_markup_like_words(marks_root):
    r = run(marks_root, "query", "[multimodal]", "--variant", "raw", "--model", "marks", "--keep-inputs",
            "-k", str(len(MARKED) + 2))
    assert r.exit_code == 0, r.stderr
    heading = [line for line in r.stdout.splitlines() if line.startswith("Answers:")]
    assert heading and heading[0].startswith("Answers: [multimodal]  (marks/input"), heading
    for word in MARKED:
        assert repr(word) in r.stdout, word


def test_neighbours_expected_title_shows_markup_like_words(marks_root):
    r = run(marks_root, "query", "plain", "--expect", "[red]", "--model", "marks")
    assert r.exit_code == 0, r.stderr
    assert "Expected '[red]' ('[red]')" in r.stdout


# -- the TUI ----------------------------------------------------------------------------


def _shown(app, selector: str) -> list[str]:
    """What a DataTable draws for each cell (its cell formatter reads a str as markup)."""
    from textual.widgets import DataTable
    from textual.widgets._data_table import default_cell_formatter

    t = app.query_one(selector, DataTable)
    return [default_cell_formatter(c).plain for i in range(t.row_count) for c in t.get_row_at(i)]


async def _until(pilot, done, seconds: float = 20) -> None:
    """Pause until ``done()`` holds or ``seconds`` pass (the assertions that follow decide)."""
    for _ in range(int(seconds * 10)):
        await pilot.pause(0.1)
        try:
            if done():
                return
        except Exception:  # a widget not mounted yet
            pass


async def test_tui_token_list_and_analogy_show_markup_like_words(marks_root):
    pytest.importorskip("textual")
    from textual.widgets import Input, Static

    from explorer.tui.app import make_app

    app = make_app(marks_root, "numpy", model="marks", expression="[multimodal]", expect="[red]")
    async with app.run_test(size=(160, 40)) as pilot:
        await _until(pilot, lambda: len(_shown(app, "#tokens-table")) > len(MARKED))
        cells = _shown(app, "#tokens-table")
        for word in MARKED:
            assert repr(word) in cells, word
        await app.action_show("analogy")
        app.query_one("#expr", Input).value = "[multimodal] + [b]bold[/b]"
        status = lambda: str(app.query_one("#analogy-status", Static).render())  # noqa: E731
        await _until(pilot, lambda: "[multimodal] + [b]bold[/b]" in status())
        assert "[multimodal] + [b]bold[/b]" in status()
        assert "expected '[red]'" in str(app.query_one("#analogy-expected", Static).render())
        assert repr("[/]") in _shown(app, "#analogy-results")
