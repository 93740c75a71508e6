"""Neighbours: of a token (input embedding, unembedding and, where a corpus is stored,
per-layer token means) or of a hidden state (a text run through the model), per layer
side by side."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Select, Static, Switch

from explorer.errors import ExplorerError
from explorer.tui.screens.base import Pane, background, fill, fmt, plain

MODES = [("token", "token"), ("hidden state", "state")]
MAX_COLUMNS = 4


class NeighboursPane(Pane):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar"):
            yield Select(MODES, value="token", allow_blank=False, id="nb-mode", classes="short")
            yield Input("king", placeholder="word (token mode) or text (hidden-state mode)", id="nb-query")
            yield Input("", placeholder="position (-1)", id="nb-position", classes="short")
            yield Input("", placeholder="layers, e.g. 0,9,18", id="nb-layers", classes="medium")
            yield Select([], prompt="model", id="nb-model", classes="medium")
            yield Label("centre", classes="switch-label")
            yield Switch(value=False, id="nb-center")
        yield Static("Enter searches. Token mode: input and output sets, plus per-layer token means for the layers "
                     "given (needs `explorer export-states`). Hidden-state mode runs the text through the model. "
                     "centre: cosine after subtracting the layer's mean state (stored layers only).",
                     id="nb-status", classes="status")
        yield Horizontal(id="nb-columns")

    def on_mount(self) -> None:
        self.load_models("#nb-model")

    def focus_first(self) -> None:
        self.query_one("#nb-query").focus()

    def _layers(self) -> list[int]:
        raw = self.query_one("#nb-layers", Input).value.replace(" ", "")
        try:
            return [int(x) for x in raw.split(",") if x][:MAX_COLUMNS]
        except ValueError:
            raise ExplorerError(f"layers must be integers separated by commas, not {raw!r}") from None

    @on(Input.Submitted)
    @on(Select.Changed, "#nb-mode")
    @on(Switch.Changed, "#nb-center")
    def search(self, event=None) -> None:
        model = self.query_one("#nb-model", Select).value
        text = self.query_one("#nb-query", Input).value
        if model == Select.BLANK or not text.strip():
            return
        status = self.query_one("#nb-status", Static)
        try:
            layers = self._layers()
        except ExplorerError as exc:
            status.update(plain(str(exc), "red"))
            return
        pos = self.query_one("#nb-position", Input).value.strip()
        mode = self.query_one("#nb-mode", Select).value
        if mode == "state" and not layers:
            status.update("[red]hidden-state mode needs layers, e.g. 0,9,18[/]")
            return
        status.update("searching..." if mode == "token" else "running the model (the first run loads it)...")
        center = self.query_one("#nb-center", Switch).value
        self.run_search(self.next_seq("nb"), str(mode), str(model), text, layers,
                        int(pos) if pos.lstrip("-").isdigit() else None, center)

    @background(exclusive=True, group="neighbours")
    def run_search(self, seq: int, mode: str, model: str, text: str, layers: list[int], position: int | None,
                   center: bool = False) -> None:
        try:
            if mode == "token":
                columns = self._token_columns(model, text, layers, center)
            else:
                columns = self._state_columns(model, text, layers, position, center)
        except ExplorerError as exc:
            self.post(self._show_error, seq, str(exc))
            return
        self.post(self._show, seq, columns)

    def _token_columns(self, model: str, word: str, layers: list[int], center: bool) -> list[tuple[str, list[tuple]]]:
        from explorer.services.query import Expression, QueryOptions, SetChoice, Term, analogy

        expr = Expression((Term(word.strip()),))
        out = []
        for name in ("input", "output"):
            res = analogy(self.engine, expr, QueryOptions(SetChoice(model, name), k=12), auto_export=False)
            out.append((f"{name} set", [(h.rank, repr(h.token), fmt(h.score)) for h in res.results]))
        for layer in layers:
            res = analogy(self.engine, expr, QueryOptions(SetChoice(model, layer=layer, center=center), k=12), auto_export=False)
            out.append((f"layer {layer} (token means{', centred' if center else ''})",
                        [(h.rank, repr(h.token), fmt(h.score)) for h in res.results]))
        return out

    def _state_columns(self, model: str, text: str, layers: list[int], position: int | None,
                       center: bool) -> list[tuple[str, list[tuple]]]:
        from explorer.services.states import StateQuery, neighbours_of_text

        q = StateQuery(text, tuple(layers), position, model, k=12, center=center)
        found = neighbours_of_text(self.engine, q, self.app.runners)
        return [(f"layer {r.layer}: {r.token!r} at {r.position}{', centred' if r.centered else ''}",
                 [(h.rank, repr(h.token), fmt(h.score), h.lang or "", h.snippet) for h in r.results]) for r in found]

    def _show_error(self, seq: int, message: str) -> None:
        if self.current("nb", seq):
            self.query_one("#nb-status", Static).update(plain(message, "red"))

    def _show(self, seq: int, columns: list[tuple[str, list[tuple]]]) -> None:
        if not self.current("nb", seq):
            return
        box = self.query_one("#nb-columns", Horizontal)
        box.remove_children()
        for title, rows in columns:
            table = DataTable(zebra_stripes=True, classes="nb-table")
            box.mount(Vertical(Label(plain(title), classes="title"), table, classes="nb-column"))
            cols = ("#", "token", "cosine") if len(rows[0] if rows else ()) <= 3 else ("#", "token", "cosine", "lang", "context")
            fill(table, cols, rows)
        self.query_one("#nb-status", Static).update(f"{len(columns)} columns")
