"""Lens: run a language-attribution task (per-layer curves as a terminal plot, per-entry
table), or a prompt (layer x top-token grid)."""

from __future__ import annotations

import threading

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, ProgressBar, Select, Static

from explorer.errors import ExplorerError
from explorer.services.lens import LensTask
from explorer.tui.screens.base import Pane, background, fill, fmt, plain

TASKS = [("translate", "translate"), ("repeat", "repeat"), ("cloze", "cloze"), ("prompt (logit lens grid)", "prompt")]
LANG_OPTIONS = [(code, code) for code in ("en", "fr", "de", "ru", "zh")]
LENS_OPTIONS = [("logit lens", "logit"), ("tuned lens (learned)", "tuned")]


class Cancelled(Exception):
    pass


class LensPane(Pane):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar"):
            yield Select(TASKS, value="translate", allow_blank=False, id="lens-task", classes="medium")
            yield Select(LANG_OPTIONS, value="fr", allow_blank=False, id="lens-from", classes="short")
            yield Select(LANG_OPTIONS, value="zh", allow_blank=False, id="lens-to", classes="short")
            yield Input("4", placeholder="shots", id="lens-shots", type="integer", classes="short")
            yield Input("", placeholder="limit entries", id="lens-limit", type="integer", classes="short")
            yield Button("Run", id="lens-run", variant="primary")
            yield Button("Cancel", id="lens-cancel", disabled=True)
        with Horizontal(classes="bar"):
            yield Select(LENS_OPTIONS, value="logit", allow_blank=False, id="lens-lens")
            yield Input('Français: "fleur" - 中文: "花". Français: "eau" - 中文: "', id="lens-prompt",
                        placeholder="prompt for the lens grid (task: prompt)")
        with Horizontal(classes="bar"):
            yield ProgressBar(total=1, id="lens-progress", show_eta=False)
            yield Static("Choose a task and press Run (from/to apply to translate; 'to' is the language of repeat and cloze).",
                         id="lens-status", classes="status")
        with Horizontal():
            yield Static("", id="lens-plot", classes="plot")
            yield DataTable(id="lens-layers", zebra_stripes=True)
        yield DataTable(id="lens-entries", zebra_stripes=True)

    def on_mount(self) -> None:
        self._cancel = threading.Event()
        self.query_one("#lens-plot", Static).display = False

    def focus_first(self) -> None:
        self.query_one("#lens-task").focus()

    def _int(self, wid: str) -> int | None:
        v = self.query_one(wid, Input).value.strip()
        return int(v) if v.lstrip("-").isdigit() else None

    @on(Button.Pressed, "#lens-run")
    @on(Input.Submitted, "#lens-prompt")
    def start(self, event=None) -> None:
        task = str(self.query_one("#lens-task", Select).value)
        lens = str(self.query_one("#lens-lens", Select).value)
        self._cancel.clear()
        self.query_one("#lens-run", Button).disabled = True
        self.query_one("#lens-cancel", Button).disabled = False
        self.query_one("#lens-status", Static).update("loading the model...")
        seq = self.next_seq("lens")
        if task == "prompt":
            self.run_prompt(seq, self.query_one("#lens-prompt", Input).value, lens)
        else:
            src, tgt = str(self.query_one("#lens-from", Select).value), str(self.query_one("#lens-to", Select).value)
            where = {"src": src, "tgt": tgt} if task == "translate" else {"lang": tgt}
            self.run_task(seq, LensTask(task, **where, shots=self._int("#lens-shots") or 4, model=self.app.start_model,
                                        limit=self._int("#lens-limit"), lens=lens))

    @on(Select.Changed, "#lens-lens")
    def lens_changed(self, event: Select.Changed) -> None:
        """Choosing the tuned lens says at once which learned lens it is, or how to train one."""
        if event.value == "tuned":
            self.check_learned(self.next_seq("lens-check"))

    @background(exclusive=True, group="lens-check")
    def check_learned(self, seq: int) -> None:
        from explorer.services.lens import learned_lens_name

        try:
            name = learned_lens_name(self.engine, self.app.start_model)
        except ExplorerError as exc:
            self.post(self._note, seq, f"[red]{escape(str(exc))}[/]")
            return
        self.post(self._note, seq, escape(f"runs and prompts will be read with the {name} lens"))

    def _note(self, seq: int, message: str) -> None:
        if self.current("lens-check", seq):
            self.query_one("#lens-status", Static).update(message)

    @on(Button.Pressed, "#lens-cancel")
    def cancel(self) -> None:
        self._cancel.set()
        self.query_one("#lens-status", Static).update("cancelling...")

    def _progress(self, label: str, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self.post(self._show_progress, label, done, total)

    def _report(self, message: str) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self.post(self.query_one("#lens-status", Static).update, escape(message))

    def _show_progress(self, label: str, done: int, total: int) -> None:
        self.query_one("#lens-progress", ProgressBar).update(total=total, progress=done)
        self.query_one("#lens-status", Static).update(f"{label}: {done}/{total}")

    @background(exclusive=True, group="lens")
    def run_task(self, seq: int, spec: LensTask) -> None:
        from explorer.services import lens

        try:
            prompts = lens.prepare(spec)
            label = prompts.target_label
            result = lens.lens_task(self.engine, spec, prompts, progress=self._progress, report=self._report)
        except Cancelled:
            self.post(self._done, seq, "cancelled; nothing was recorded")
            return
        except ExplorerError as exc:
            self.post(self._done, seq, f"[red]{escape(str(exc))}[/]")
            return
        self.post(self._show_result, seq, result, label)

    def _done(self, seq: int, message: str) -> None:
        self.query_one("#lens-run", Button).disabled = False
        self.query_one("#lens-cancel", Button).disabled = True
        if self.current("lens", seq):
            self.query_one("#lens-status", Static).update(message)

    def _show_result(self, seq: int, result, label: str) -> None:
        from explorer.services.lens import terminal_plot

        self._done(seq, escape(f"{result.model} {result.task} with the {result.config.get('lens', 'logit')} lens: "
                               f"{result.entries} entries, last-layer accuracy {result.accuracy:.2f} (shown form alone "
                               f"{result.accuracy_first:.2f}), recorded as lens run {result.run_id}"))
        plot = self.query_one("#lens-plot", Static)
        plot.update(plain(terminal_plot(result, label, width=24)))
        plot.display = True
        fill(self.query_one("#lens-layers", DataTable), ("layer", "p(target)", "p(English)", "entropy", "energy", "top-1"),
             [(s.layer, fmt(s.p_target, 3), fmt(s.p_english, 3), fmt(s.entropy, 2), fmt(s.energy, 2), repr(s.top1))
              for s in result.layers])
        fill(self.query_one("#lens-entries", DataTable), ("concept", "target", "English", "top-1 last", "correct"),
             [(e["concept"], e["target"], e["english"], e.get("top1_last_token", ""), "yes" if e["correct"] else "no")
              for e in result.per_entry])

    @background(exclusive=True, group="lens")
    def run_prompt(self, seq: int, text: str, lens: str = "logit") -> None:
        from explorer.services.lens import TrajectoryOptions, trajectory

        try:
            traj = trajectory(self.engine, TrajectoryOptions(text, None, self.app.start_model, 5, export=False, lens=lens),
                              runner_for=self.app.runners.get)
        except ExplorerError as exc:
            self.post(self._done, seq, f"[red]{escape(str(exc))}[/]")
            return
        self.post(self._show_grid, seq, traj, lens)

    def _show_grid(self, seq: int, traj, lens: str = "logit") -> None:
        self._done(seq, escape(f"{lens} lens of {traj.token!r} (position {traj.position}) in {traj.model}"))
        self.query_one("#lens-plot", Static).display = False  # the grid needs the width
        fill(self.query_one("#lens-layers", DataTable), ("layer", "top 1", "top 2", "top 3", "top 4", "top 5"),
             [(v.layer, *[f"{t!r} {p:.2f}" for t, _, p in v.lens_top]) for v in traj.layers])
