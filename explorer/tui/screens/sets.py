"""Vector sets: every model's sets (input, output, per-layer hidden states, trained), and
its token table with search and filters."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Select, Static

from explorer.tui.screens.base import Pane, background, fill, plain

TOKEN_LIMIT = 200
SPACE = [("any", "any"), ("word start", "yes"), ("no word start", "no")]


class SetsPane(Pane):
    def compose(self) -> ComposeResult:
        yield Label("Models and vector sets  [dim](Enter on a row: browse its tokens)[/]", classes="title")
        yield DataTable(id="sets-table", cursor_type="row", zebra_stripes=True)
        yield Label("Tokens", id="tokens-title", classes="title")
        with Horizontal(classes="bar"):
            yield Input(placeholder="search token text (substring)", id="token-search")
            yield Select([("any script", "any")], value="any", allow_blank=False, id="token-script")
            yield Select(SPACE, value="any", allow_blank=False, id="token-space")
            yield Input(placeholder="id from", id="token-from", type="integer", classes="short")
            yield Input(placeholder="id to", id="token-to", type="integer", classes="short")
        yield DataTable(id="tokens-table", zebra_stripes=True)
        yield Static("", id="tokens-status", classes="status")

    def on_mount(self) -> None:
        self.model_id: int | None = None
        self.model_name = ""
        self.load_sets()

    def focus_first(self) -> None:
        self.query_one("#sets-table").focus()

    @background(exclusive=True, group="sets")
    def load_sets(self) -> None:
        from explorer.services.browse import sets_and_corpora

        rows = sets_and_corpora(self.engine)
        self.post(self._show_sets, rows)

    def _show_sets(self, rows: list[tuple]) -> None:
        self._set_rows = rows
        fill(self.query_one("#sets-table", DataTable), ("model", "vector set", "kind", "rows", "dim", "dtype", "note"),
             [r[1:] for r in rows])
        if rows and self.model_id is None:
            self.choose_model(rows[0][0], rows[0][1])
        elif not rows:
            self.query_one("#tokens-status", Static).update("No models yet: run `explorer export` or `explorer query` first.")

    @on(DataTable.RowSelected, "#sets-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        row = self._set_rows[event.cursor_row]
        self.choose_model(row[0], row[1])

    def choose_model(self, model_id: int, name: str) -> None:
        self.model_id, self.model_name = model_id, name
        self.query_one("#tokens-title", Label).update(plain(f"Tokens of {name}"))
        self.load_scripts(model_id)

    @background(exclusive=True, group="scripts")
    def load_scripts(self, model_id: int) -> None:
        from explorer.services.browse import script_counts

        scripts = script_counts(self.engine, model_id)
        self.post(self._set_scripts, model_id, scripts)

    def _set_scripts(self, model_id: int, scripts: list[tuple]) -> None:
        if model_id != self.model_id:
            return  # another model was chosen meanwhile
        self.query_one("#token-script", Select).set_options(
            [("any script", "any")] + [(f"{s} ({n})", s) for s, n in scripts])
        self.refresh_tokens()

    @on(Input.Changed, "#token-search, #token-from, #token-to")
    @on(Select.Changed, "#token-script, #token-space")
    def refresh_tokens(self, event=None) -> None:
        if self.model_id is None:
            return
        from explorer.services.browse import TokenSearch

        text = self.query_one("#token-search", Input).value
        script = self.query_one("#token-script", Select).value
        space = self.query_one("#token-space", Select).value
        bounds = [self.query_one(wid, Input).value.strip() for wid in ("#token-from", "#token-to")]
        first, last = (int(v) if v.lstrip("-").isdigit() else None for v in bounds)
        search = TokenSearch(self.model_id, text, None if script in ("any", Select.BLANK) else str(script),
                             (space == "yes") if space in ("yes", "no") else None, first, last)
        self.search_tokens(self.next_seq("tokens"), search)

    @background(exclusive=True, group="tokens")
    def search_tokens(self, seq: int, search) -> None:
        from explorer.services.browse import tokens_matching

        found = tokens_matching(self.engine, search, TOKEN_LIMIT + 1)
        self.post(self._show_tokens, seq, found.rows, found.total)

    def _show_tokens(self, seq: int, rows: list[tuple], total: int) -> None:
        if not self.current("tokens", seq):
            return  # a newer search is on its way
        shown = rows[:TOKEN_LIMIT]
        fill(self.query_one("#tokens-table", DataTable), ("id", "raw", "text", "script", "word start", "special"),
             [(r[0], repr(r[1]), repr(r[2]), r[3], "yes" if r[4] else "", "yes" if r[5] else "") for r in shown])
        more = f" (first {TOKEN_LIMIT} shown)" if total > TOKEN_LIMIT else ""
        self.query_one("#tokens-status", Static).update(f"{total:,} tokens match{more}")
