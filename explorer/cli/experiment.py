"""``explorer experiment list|run|status``: toy-model experiments recorded in the catalog."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from explorer.cli.common import cli_errors, err_console, fail, print_json, state

experiment_app = typer.Typer(
    help=(
        "Toy-model experiments: counting (Yehudai et al. 2024; llm-counting: the same question put to a "
        "stored language model), linear concept representations "
        "(Jiang et al. 2024), word2vec and co-occurrence SVD embeddings. Runs and metrics land in "
        "the catalog while they run (tables sweeps, runs, metrics): query them with `explorer sql`."
    ),
    no_args_is_help=True,
)


@experiment_app.command("list")
@cli_errors
def list_cmd(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List experiments, their presets and settings (with defaults)."""
    from explorer.services import sweeps

    items = [e.to_dict() for e in sweeps.experiments()]
    if json_out:
        print_json(items)
        return
    from rich.console import Console

    console = Console()
    for it in items:
        console.print(f"[bold]{escape(it['name'])}[/]  {escape(it['description'])}", highlight=False)
        console.print(f"  presets: {', '.join(it['presets'])}", highlight=False, markup=False)
        settings = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in it["settings"].items())
        console.print(f"  settings (--set key=value): {settings}", highlight=False, soft_wrap=True, markup=False)


class _Display:
    """Progress on stderr: one bar for the sweep, one per running point (steps/s, loss)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.console = err_console()
        self.bars: dict[int, Any] = {}
        self.sweep_task = None
        self.progress = None
        self.started: dict[int, float] = {}

    def __enter__(self) -> "_Display":
        if not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console)
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, e: Any) -> None:
        from explorer.services import sweeps

        p = self.progress
        if isinstance(e, sweeps.SweepOpened) and p is not None:
            self.sweep_task = p.add_task(f"sweep {e.sweep_id}", total=e.total, completed=e.skipped,
                                         info=f"{e.skipped} done earlier" if e.skipped else "")
        elif isinstance(e, sweeps.RunStarted) and p is not None:
            self.started[e.run_id] = time.monotonic()
            if self.sweep_task is not None:  # a search may run more points than it expected
                bar = next(t for t in p.tasks if t.id == self.sweep_task)
                if bar.total is not None and bar.completed + len(self.bars) + 1 > bar.total:
                    p.update(self.sweep_task, total=bar.completed + len(self.bars) + 1)
            self.bars[e.run_id] = p.add_task(escape(f"  {e.point}"), total=None, info="")
        elif isinstance(e, sweeps.RunProgress) and p is not None and e.run_id in self.bars:
            rate = e.step / max(time.monotonic() - self.started.get(e.run_id, time.monotonic()), 1e-9)
            vals = " ".join(f"{k} {v:.4g}" for k, v in e.values.items())
            p.update(self.bars[e.run_id], completed=e.step, total=e.total, info=escape(f"{rate:.1f}/s {vals}"))
        elif isinstance(e, sweeps.RunFinished):
            self._finished(e)
        elif isinstance(e, sweeps.RunLog) and not self.quiet:
            self.console.print(f"[dim]·[/] run {e.run_id}: {escape(e.text)}", highlight=False)

    def _finished(self, e: Any) -> None:
        p = self.progress
        if p is not None and e.run_id in self.bars:
            p.remove_task(self.bars.pop(e.run_id))
            if self.sweep_task is not None:
                p.advance(self.sweep_task)
        if e.status == "failed":
            self.console.print(f"[red]run {e.run_id} ({escape(e.point)}) failed:[/] {escape(str(e.error))}",
                               highlight=False)
            if e.traceback:
                self.console.print(e.traceback, highlight=False, markup=False)


@experiment_app.command("run")
@cli_errors
def run_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Experiment: counting, llm-counting, concepts, word2vec or cooccurrence (see `explorer experiment list`).")],
    preset: Annotated[Optional[str], typer.Option(help="smoke (minutes on 2 CPU cores), paper (the published setting) or another the experiment has, e.g. counting's cpu (meant for a laptop; the README says what it measured); `explorer experiment list` shows them.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting: --set d=16 --set ms=5,10,20 (repeatable).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Points run in parallel (local processes, or Ray tasks).")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run on a Ray cluster at this address ('local' starts one here). Needs the 'ray' extra: pip install 'explorer\\[ray]'.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the latest sweep with the same settings, skipping its finished points.")] = False,
    png: Annotated[Optional[Path], typer.Option(help="Write the sweep's figure (matplotlib PNG) here.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (settings, points, estimated time) and exit.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start a sweep estimated to take over 10 minutes without a --preset, or over 4 hours on this machine with one (e.g. --preset paper).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help=(
        "Print the sweep's events as they happen, one JSON object a line on stdout, instead of progress bars: "
        "plan, sweep, then per point start, metric, progress, log and run, and done last (the result, as --json "
        "prints it, with the summary's text). Each has a 'kind' and the fields listed in explorer/experiments/events.py."))] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run an experiment's sweep; Ctrl-C cancels cleanly (finished points are kept; --resume skips them)."""
    from explorer.services import sweeps

    if json_out and jsonl:
        fail("--json and --jsonl cannot be combined (the last --jsonl line, kind done, is the result)")
    request = sweeps.SweepRequest(name, preset, tuple(settings or ()))
    plan = sweeps.plan(request)
    if dry_run:
        print_json(plan.to_dict()) if json_out else typer.echo("\n".join(plan.outline(workers)))
        return
    if plan.needs_confirmation(workers) and not yes:
        fail(f"{plan.describe(workers)}; add --yes to start it, or choose a shorter --preset "
             f"(see --dry-run and `explorer experiment list`)")
    engine = state(ctx).engine()
    if not (quiet or jsonl):
        sys.stderr.write(plan.describe(workers) + "\n")  # one line, never wrapped: easy to grep
    with _Display(quiet or json_out or jsonl) as display:
        sweep = sweeps.start(engine, plan, sweeps.RunOptions(workers, ray, resume), _stream if jsonl else display)
        result = _run_cancellable(sweep, display)
    if png is not None:
        sweeps.save_figure(result, png)
    if json_out:
        print_json({**result.to_dict(), "text": result.summary.text if result.summary else None})
    elif not jsonl:
        _print_result(result, png)
    kept = sum(r["status"] == "finished" for r in result.runs) + result.skipped
    if result.status == "cancelled":
        fail(f"cancelled: {kept} finished points kept in sweep {result.sweep_id}; "
             f"continue with the same command and --resume", 130)
    if result.status == "failed":
        bad = next(r for r in result.runs if r["status"] == "failed")
        fail(f"{sum(r['status'] == 'failed' for r in result.runs)} point(s) failed, e.g. {bad['point']}: {bad['error']}")


def _run_cancellable(sweep: Any, display: _Display) -> Any:
    """Run the sweep; the first Ctrl-C cancels it cleanly, a second one aborts."""
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if sweep.cancelled:
            raise KeyboardInterrupt
        display.console.print("[yellow]cancelling: the running points stop at their next check (Ctrl-C again to abort)[/]")
        sweep.cancel()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        return sweep.run()
    finally:
        signal.signal(signal.SIGINT, previous)


def _stream(event: Any) -> None:
    from explorer.services.sweeps import to_json_line

    sys.stdout.write(to_json_line(event) + "\n")
    sys.stdout.flush()


def _print_result(result: Any, png: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=escape(f"sweep {result.sweep_id}: {result.experiment} ({result.status})"))
    for col in ("run", "point", "status", "summary"):
        table.add_column(col)
    for r in result.runs:
        summ = r["summary"] or {}
        short = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in summ.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool))
        table.add_row(str(r["run_id"]), escape(r["point"]), r["status"], escape(short[:100] or (r["error"] or "")[:100]))
    console.print(table)
    if result.skipped:
        console.print(f"{result.skipped} points finished earlier were skipped (--resume)")
    if result.summary is not None and result.summary.text:
        console.print(result.summary.text, highlight=False, markup=False)
    if png is not None and result.summary is not None and result.summary.figure is not None:
        console.print(f"figure written to {png}")
    console.print(f"[dim]SQL: explorer sql \"SELECT * FROM run_metrics WHERE sweep_id = {result.sweep_id}\"[/]")


@experiment_app.command("status")
@cli_errors
def status_cmd(
    ctx: typer.Context,
    sweep_id: Annotated[Optional[int], typer.Argument(help="Show this sweep's runs and summary.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many recent sweeps to list.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recent sweeps with run counts; a sweep whose process was killed shows as interrupted."""
    from explorer.services import sweeps

    engine = state(ctx).engine()
    if sweep_id is None:
        items = sweeps.recent(engine, limit)
    else:
        found = sweeps.status(engine, sweep_id)
        if found is None:
            fail(f"no sweep {sweep_id}; see `explorer experiment status`")
        items = [found]
    if json_out:
        print_json([s.to_dict() for s in items])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="experiment sweeps")
    for col in ("sweep", "experiment", "preset", "status", "finished", "running", "other", "started"):
        table.add_column(col)
    for s in items:
        table.add_row(str(s.sweep_id), escape(s.experiment), escape(s.preset or ""), s.status, str(s.finished_runs),
                      str(s.running_runs), str(s.other_runs), s.started[:19])
    console = Console()
    console.print(table)
    for r in (items[0].runs if sweep_id is not None else None) or ():
        console.print(f"  run {r.run_id} {r.point}: {r.status} (step {r.last_step}) "
                      f"{json.dumps(r.summary, ensure_ascii=False) if r.summary else r.error or ''}",
                      highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
