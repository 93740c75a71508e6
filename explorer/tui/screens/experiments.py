"""Experiments: a form of the chosen experiment's config, launch, watch progress and a
live loss plot, cancel; finished sweeps listed.

A sweep runs as a subprocess (`explorer experiment run ... --events`), so training
never competes with the interface for the GIL, and Cancel is the CLI's own clean
Ctrl-C (finished points are kept)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Sparkline, Static

from explorer.tui.screens.base import Pane, background, fill


class ExperimentsPane(Pane):
    def __init__(self, names: list[str] | None = None, **kw) -> None:
        super().__init__(**kw)
        from explorer.experiments import registry

        self.names = names or registry.names()
        self.proc: subprocess.Popen | None = None
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

    def _experiment(self):
        from explorer.experiments import registry

        return registry.get(str(self.query_one("#exp-name", Select).value))

    @on(Select.Changed, "#exp-name")
    async def load_form(self, event=None) -> None:
        exp = self._experiment()
        presets = self.query_one("#exp-preset", Select)
        with presets.prevent(Select.Changed):
            presets.set_options([("defaults", "")] + [(p, p) for p in exp.presets])
            presets.value = "smoke" if "smoke" in exp.presets else ""
        await self.fill_form()

    @on(Select.Changed, "#exp-preset")
    async def fill_form(self, event=None) -> None:
        from explorer.experiments import base

        exp = self._experiment()
        preset = str(self.query_one("#exp-preset", Select).value or "")
        if getattr(self, "_form_key", None) == (exp.name, preset):
            return  # already showing this form
        self._form_key = (exp.name, preset)
        config = base.apply(exp.Config(), exp.presets.get(preset, {}))
        form = self.query_one("#exp-form", VerticalScroll)
        await form.remove_children()
        self.defaults = base.config_dict(config)
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
        from explorer.experiments import runner

        name = str(self.query_one("#exp-name", Select).value)
        preset = str(self.query_one("#exp-preset", Select).value or "")
        settings = self.settings()
        status = self.query_one("#exp-status", Static)
        try:
            plan = runner.plan(name, preset or None, runner.parse_settings(settings))
        except ExplorerError as exc:
            self._confirm = None
            status.update(f"[red]{escape(str(exc))}[/]")
            return
        cmd = [sys.executable, "-m", "explorer", "--root", str(self.engine.root), "experiment", "run", name, "--events"]
        if preset:
            cmd += ["--preset", preset]
        for s in settings:
            cmd += ["--set", s]
        if plan.needs_confirmation():
            if getattr(self, "_confirm", None) != cmd:
                self._confirm = cmd
                status.update(f"[yellow]{escape(plan.describe())}[/]: press Run again to start it, "
                              "or choose a preset")
                return
            cmd.append("--yes")
        self._confirm = None
        self.losses = []
        self.query_one("#exp-loss", Sparkline).data = []
        self.query_one("#exp-run", Button).disabled = True
        self.query_one("#exp-cancel", Button).disabled = False
        status.update(escape(f"starting {plan.describe()}"))
        self.watch_process(cmd)

    @on(Button.Pressed, "#exp-cancel")
    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.query_one("#exp-status", Static).update("cancelling: running points stop at their next check...")

    @background(exclusive=True, group="experiment")
    def watch_process(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.post(self.handle_event, event)
        err = self.proc.stderr.read().strip().splitlines()
        code = self.proc.wait()
        self.post(self.process_ended, code, err[-1] if err else "")

    def handle_event(self, e: dict) -> None:
        kind = e.get("kind")
        status = self.query_one("#exp-status", Static)
        if kind == "plan":
            status.update(escape(e["text"]))
        elif kind == "sweep":
            status.update(f"sweep {e['sweep_id']}: {e['todo']} points to run ({e['skipped']} done earlier)")
        elif kind == "start":
            status.update(escape(f"run {e['run_id']}: {e['point']}"))
        elif kind == "progress":
            self.query_one("#exp-progress", ProgressBar).update(total=e["total"], progress=e["step"])
            if "loss" in e["values"]:
                self.losses.append(e["values"]["loss"])
                self.query_one("#exp-loss", Sparkline).data = self.losses[-200:]
            vals = " ".join(f"{k} {v:.4g}" for k, v in e["values"].items())
            status.update(f"run {e['run_id']}: step {e['step']}/{e['total']} {vals}")
        elif kind == "run":
            self.load_sweeps()
        elif kind == "done":
            status.update(f"sweep {e['sweep_id']} {e['status']}")
            self.query_one("#exp-summary", Static).update(escape(e.get("text") or ""))

    def process_ended(self, code: int, last_error: str) -> None:
        self.query_one("#exp-run", Button).disabled = False
        self.query_one("#exp-cancel", Button).disabled = True
        if code != 0:
            self.query_one("#exp-status", Static).update(f"[red]{escape(last_error or f'exit code {code}')}[/]")
        self.load_sweeps()

    @background(exclusive=True, group="sweeps")
    def load_sweeps(self) -> None:
        from explorer.experiments import runner

        try:
            rows = self.locked(runner.sweeps, self.engine.catalog, None, 50)
        except Exception as exc:  # the sweep's process holds the catalog this instant: next event retries
            rows = None
            self.post(self.query_one("#exp-status", Static).update, f"[yellow]{escape(str(exc))}[/]")
        if rows is not None:
            self.post(self._show_sweeps, rows)

    def _show_sweeps(self, rows: list[dict]) -> None:
        fill(self.query_one("#exp-sweeps", DataTable), ("sweep", "experiment", "preset", "status", "finished runs", "started"),
             [(s["sweep_id"], s["experiment"], s["preset"] or "", s["status"], s["finished_runs"], s["started"][:19]) for s in rows])
