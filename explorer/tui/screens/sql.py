"""SQL: an editor with history (Ctrl+Up / Ctrl+Down) and a results table; errors in place."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Static, TextArea

from explorer.errors import ExplorerError
from explorer.tui.screens.base import Pane, background, fill, plain

ROW_LIMIT = 1000
START = "SELECT * FROM model_summary"


class SqlPane(Pane):
    BINDINGS = [
        Binding("ctrl+r", "run", "Run SQL"),
        Binding("ctrl+up", "history(-1)", "Older query"),
        Binding("ctrl+down", "history(1)", "Newer query"),
    ]

    def compose(self) -> ComposeResult:
        yield TextArea(START, id="sql-editor")
        with Horizontal(classes="bar"):
            yield Button("Run (Ctrl+R)", id="sql-run", variant="primary")
            yield Static("Read-only, as `explorer sql`. Tables: `explorer schema`.", id="sql-status", classes="status")
        yield DataTable(id="sql-results", zebra_stripes=True)

    def on_mount(self) -> None:
        self.history: list[str] = []
        self.cursor = 0

    def focus_first(self) -> None:
        self.query_one("#sql-editor").focus()

    @on(Button.Pressed, "#sql-run")
    def action_run(self) -> None:
        sql = self.query_one("#sql-editor", TextArea).text.strip()
        if not sql:
            return
        if not self.history or self.history[-1] != sql:
            self.history.append(sql)
        self.cursor = len(self.history)
        self.query_one("#sql-status", Static).update("running...")
        self.run_sql(self.next_seq("sql"), sql)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self.cursor = max(0, min(len(self.history) - 1, self.cursor + step))
        self.query_one("#sql-editor", TextArea).text = self.history[self.cursor]

    @background(exclusive=True, group="sql")
    def run_sql(self, seq: int, sql: str) -> None:
        from explorer.services.sql import run_sql

        try:
            res = run_sql(self.engine.root, sql)
        except ExplorerError as exc:
            self.post(self._error, seq, str(exc))
            return
        self.post(self._show, seq, res)

    def _error(self, seq: int, message: str) -> None:
        if self.current("sql", seq):
            self.query_one("#sql-status", Static).update(plain(f"error: {message}", "red"))

    def _show(self, seq: int, res) -> None:
        if not self.current("sql", seq):
            return
        rows = res.rows[:ROW_LIMIT]
        fill(self.query_one("#sql-results", DataTable), tuple(res.columns), rows)
        more = f" (first {ROW_LIMIT} shown)" if len(res.rows) > ROW_LIMIT else ""
        self.query_one("#sql-status", Static).update(f"{len(res.rows)} rows{more}")
