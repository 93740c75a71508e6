"""Analogy: results as you type (stale results dropped), method / exclusion / vector set
toggles, the CLI's diagnostics, and the rank of an expected word."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Select, Static, Switch

from explorer.errors import ExplorerError
from explorer.services.query import DIAGNOSTICS, QueryOptions, SetChoice, analogy
from explorer.tui.screens.base import Pane, background, fill, fmt, plain

METHODS = [("3CosAdd", "3cosadd"), ("3CosMul", "3cosmul")]
SETS = [("input embedding", "input"), ("unembedding", "output")]


class AnalogyPane(Pane):
    def __init__(self, expression: str = "woman - man + king", expect: str = "queen", **kw) -> None:
        super().__init__(**kw)
        self.start_expression, self.start_expect = expression, expect

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar"):
            yield Input(self.start_expression, placeholder="expression, e.g. woman - man + king", id="expr")
            yield Input(self.start_expect, placeholder="expected word", id="expect", classes="medium")
        with Horizontal(classes="bar"):
            yield Select([], prompt="model", id="analogy-model", classes="medium")
            yield Select(SETS, value="input", allow_blank=False, id="analogy-set", classes="medium")
            yield Select(METHODS, value="3cosadd", allow_blank=False, id="analogy-method", classes="short")
            yield Label("exclude inputs", classes="switch-label")
            yield Switch(value=True, id="analogy-exclude")
        yield Static("", id="analogy-status", classes="status")
        with Horizontal():
            yield DataTable(id="analogy-results", zebra_stripes=True)
            yield DataTable(id="analogy-diagnostics", zebra_stripes=True)
        yield Static("", id="analogy-expected", classes="status")

    def on_mount(self) -> None:
        self.load_models("#analogy-model")  # the first search starts when the model is set

    def focus_first(self) -> None:
        self.query_one("#expr").focus()

    @on(Input.Changed, "#expr, #expect")
    @on(Select.Changed, "#analogy-model, #analogy-set, #analogy-method")
    @on(Switch.Changed, "#analogy-exclude")
    def search(self, event=None) -> None:
        model = self.query_one("#analogy-model", Select).value
        expr = self.query_one("#expr", Input).value
        if model == Select.BLANK or not expr.strip():
            return
        options = QueryOptions(
            SetChoice(str(model), str(self.query_one("#analogy-set", Select).value)), k=15,
            method=str(self.query_one("#analogy-method", Select).value),
            keep_inputs=not self.query_one("#analogy-exclude", Switch).value,
            expect=self.query_one("#expect", Input).value.strip() or None,
        )
        self.query_one("#analogy-status", Static).update("searching...")
        self.run_query(self.next_seq("analogy"), expr, options)

    @background(exclusive=True, group="analogy")
    def run_query(self, seq: int, expr: str, options: QueryOptions) -> None:
        try:
            result = analogy(self.engine, expr, options, auto_export=False)
        except ExplorerError as exc:
            self.post(self._show_error, seq, str(exc))
            return
        self.post(self._show, seq, result)

    def _show_error(self, seq: int, message: str) -> None:
        if self.current("analogy", seq):
            self.query_one("#analogy-status", Static).update(plain(message, "red"))

    def _show(self, seq: int, res) -> None:
        if not self.current("analogy", seq):
            return  # the user typed on: this answer is stale
        excl = "inputs kept" if res.keep_inputs else "inputs excluded"
        resolved = ", ".join(f"{i.word}->{i.token!r}" for i in res.inputs)
        notices = " ".join(res.notices)
        self.query_one("#analogy-status", Static).update(
            plain(f"{res.expression}  ({res.vector_set}, {res.method}, {excl})  {resolved}  {notices}"))
        fill(self.query_one("#analogy-results", DataTable), ("#", "token", "id", "score"),
             [(h.rank, repr(h.token), h.token_id, fmt(h.score)) for h in res.results])
        diag = [(name, fmt(v), DIAGNOSTICS.get(name, "")) for name, v in res.diagnostics.items()]
        diag += [(f"rank if kept: {i.word}", i.rank_if_kept, "where this input would rank") for i in res.inputs]
        fill(self.query_one("#analogy-diagnostics", DataTable), ("measure", "value", "meaning"), diag)
        e, text = res.expected, plain("")
        if e is not None:
            text = plain(f"expected {e.word!r} ({e.token!r}): rank {e.rank_excluded if e.rank_excluded is not None else '-'} "
                         f"with inputs excluded, {e.rank_kept} with inputs kept, {e.baseline_rank or '-'} for the last term alone")
            oc = res.diagnostics.get("offset_cosine")
            if oc is not None and e.rank_excluded == 1 and oc < 0.5:
                text.append(f"\nthe analogy 'works' although the offsets are far from parallel (cosine {oc:.3f})", "yellow")
        self.query_one("#analogy-expected", Static).update(text)
