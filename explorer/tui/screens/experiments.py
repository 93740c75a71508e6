"""Experiments: a form of the chosen experiment's config, launch, watch progress and a
live loss plot, cancel; finished sweeps listed.

A sweep runs in a child process (`explorer experiment run ... --jsonl`, through
:func:`explorer.services.sweeps.spawn`), so training never competes with the interface
for the GIL nor shares its torch threads, and Cancel is the CLI's own clean Ctrl-C
(finished points are kept); the pane follows the sweep's public events."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    ProgressBar,
    Select,
    Sparkline,
    Static,
)

from explorer.services import sweeps
from explorer.tui.screens.base import Pane, background, fill


class ExperimentsPane(Pane):
    def __init__(self, names: list[str] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.names = names or sweeps.experiment_names()
        self.proc: sweeps.SweepProcess | None = None
        self.losses: list[float] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar"):
            yield Select([(n, n) for n in self.names], value=self.names[0], allow_blank=False, id="exp-name", classes="medium")
            yield Select([("defaults", "")], value="", allow_blank=False, id="exp-preset", classes="short")
            yield Button("Run", id="exp-run", variant="primary")
            yield Button("Cancel", id="exp-cancel", disabled=True)
        with Horizontal():
            yield VerticalScroll(id="exp-form")
            with Vertical(id="exp-watch"):
                yield Static("Set the fields (they are the experiment's settings) and press Run.", id="exp-status", classes="status")
                yield ProgressBar(total=1, id="exp-progress", show_eta=False)
                yield Label("loss", classes="title")
                yield Sparkline([], id="exp-loss")
                yield Label("Sweeps", classes="title")
                yield DataTable(id="exp-sweeps", zebra_stripes=True)
                yield Label("Summary of the last sweep", classes="title")
                with VerticalScroll(id="exp-summary-box"):
                    yield Static("", id="exp-summary")

    async def on_mount(self) -> None:
        await self.load_form()
        self.load_sweeps()

    def focus_first(self) -> None:
        self.query_one("#exp-name").focus()

    def _experiment(self) -> str:
        return str(self.query_one("#exp-name", Select).value)

    @on(Select.Changed, "#exp-name")
    async def load_form(self, event=None) -> None:
        names = sweeps.presets(self._experiment())
        presets = self.query_one("#exp-preset", Select)
        with presets.prevent(Select.Changed):
            presets.set_options([("defaults", "")] + [(p, p) for p in names])
            presets.value = "smoke" if "smoke" in names else ""
        await self.fill_form()

    @on(Select.Changed, "#exp-preset")
    async def fill_form(self, event=None) -> None:
        name = self._experiment()
        preset = str(self.query_one("#exp-preset", Select).value or "")
        if getattr(self, "_form_key", None) == (name, preset):
            return  # already showing this form
        self._form_key = (name, preset)
        form = self.query_one("#exp-form", VerticalScroll)
        await form.remove_children()
        self.defaults = sweeps.settings_for(name, preset)
        rows = []
        for key, value in self.defaults.items():
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            rows.append(Horizontal(Label(key, classes="field-label"), Input(text, id=f"field-{key}", classes="field"),
                                   classes="field-row"))
        await form.mount_all(rows)

    def settings(self) -> list[str]:
        """``--set`` arguments for the fields the user changed."""
        out = []
        for key, value in self.defaults.items():
            text = self.query_one(f"#field-{key}", Input).value.strip()
            default = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            if text != default:
                out.append(f"{key}={text}")
        return out

    @on(Button.Pressed, "#exp-run")
    def start(self) -> None:
        """Check the plan here first (errors in place, at once); a long sweep without a preset
        starts on a second press of Run, which passes --yes."""
        from explorer.errors import ExplorerError

        preset = str(self.query_one("#exp-preset", Select).value or "")
        request = sweeps.SweepRequest(self._experiment(), preset or None, tuple(self.settings()))
        status = self.query_one("#exp-status", Static)
        try:
            plan = sweeps.plan(request)
        except ExplorerError as exc:
            self._confirm = None
            status.update(f"[red]{escape(str(exc))}[/]")
            return
        yes = plan.needs_confirmation()
        if yes and getattr(self, "_confirm", None) != request:
            self._confirm = request
            status.update(f"[yellow]{escape(plan.describe())}[/]: press Run again to start it, "
                          "or choose a preset")
            return
        self._confirm = None
        self.losses = []
        self.query_one("#exp-loss", Sparkline).data = []
        self.query_one("#exp-run", Button).disabled = True
        self.query_one("#exp-cancel", Button).disabled = False
        status.update(escape(f"starting {plan.describe()}"))
        self.watch_process(request, yes)

    @on(Button.Pressed, "#exp-cancel")
    def cancel(self) -> None:
        if self.proc is not None and self.proc.running:
            self.proc.cancel()
            self.query_one("#exp-status", Static).update("cancelling: running points stop at their next check...")

    @background(exclusive=True, group="experiment")
    def watch_process(self, request: sweeps.SweepRequest, yes: bool) -> None:
        self.proc = sweeps.spawn(self.engine.root, request, yes=yes)
        for event in self.proc.events():
            self.post(self.handle_event, event)
        self.post(self.process_ended, *self.proc.wait())

    def handle_event(self, e: sweeps.Event) -> None:
        status = self.query_one("#exp-status", Static)
        if isinstance(e, sweeps.PlanStated):
            status.update(escape(e.text))
        elif isinstance(e, sweeps.SweepOpened):
            more = f", a search: about {e.total} in all" if e.search else ""
            status.update(f"sweep {e.sweep_id}: {e.todo} points to run ({e.skipped} done earlier{more})")
        elif isinstance(e, sweeps.RunStarted):
            status.update(escape(f"run {e.run_id}: {e.point}"))
        elif isinstance(e, sweeps.RunProgress):
            self.query_one("#exp-progress", ProgressBar).update(total=e.total, progress=e.step)
            if "loss" in e.values:
                self.losses.append(e.values["loss"])
                self.query_one("#exp-loss", Sparkline).data = self.losses[-200:]
            vals = " ".join(f"{k} {v:.4g}" for k, v in e.values.items())
            status.update(f"run {e.run_id}: step {e.step}/{e.total} {vals}")
        elif isinstance(e, sweeps.RunFinished):
            self.load_sweeps()
        elif isinstance(e, sweeps.SweepDone):
            status.update(f"sweep {e.sweep_id} {e.status}")
            self.query_one("#exp-summary", Static).update(escape(e.text or ""))

    def process_ended(self, code: int, last_error: str) -> None:
        self.query_one("#exp-run", Button).disabled = False
        self.query_one("#exp-cancel", Button).disabled = True
        if code != 0:
            self.query_one("#exp-status", Static).update(f"[red]{escape(last_error or f'exit code {code}')}[/]")
        self.load_sweeps()

    @background(exclusive=True, group="sweeps")
    def load_sweeps(self) -> None:
        try:
            rows = sweeps.recent(self.engine, 50)
        except Exception as exc:  # the sweep's process holds the catalog this instant: next event retries
            rows = None
            self.post(self.query_one("#exp-status", Static).update, f"[yellow]{escape(str(exc))}[/]")
        if rows is not None:
            self.post(self._show_sweeps, rows)

    def _show_sweeps(self, rows: list[sweeps.SweepStatus]) -> None:
        fill(self.query_one("#exp-sweeps", DataTable), ("sweep", "experiment", "preset", "status", "finished runs", "started"),
             [(s.sweep_id, s.experiment, s.preset or "", s.status, s.finished_runs, s.started[:19]) for s in rows])
