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
        "Toy-model experiments: counting (Yehudai et al. 2024), linear concept representations "
        "(Jiang et al. 2024), word2vec and co-occurrence SVD embeddings. Runs and metrics land in "
        "the catalog while they run (tables sweeps, runs, metrics): query them with `explorer sql`."
    ),
    no_args_is_help=True,
)


@experiment_app.command("list")
@cli_errors
def list_cmd(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List experiments, their presets and settings (with defaults)."""
    import dataclasses

    from explorer.experiments import base, registry

    items = []
    for name in registry.names():
        exp = registry.get(name)
        items.append({"name": name, "description": exp.description, "presets": exp.presets,
                      "settings": base.config_dict(exp.Config()),
                      "types": {f.name: str(f.type) for f in dataclasses.fields(exp.Config)}})
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console)
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, e: dict) -> None:
        kind, p = e.get("kind"), self.progress
        if kind == "sweep" and p is not None:
            self.sweep_task = p.add_task(f"sweep {e['sweep_id']}", total=e["total"], completed=e["skipped"],
                                         info=f"{e['skipped']} done earlier" if e["skipped"] else "")
        elif kind == "start" and p is not None:
            self.started[e["run_id"]] = time.monotonic()
            self.bars[e["run_id"]] = p.add_task(escape(f"  {e['point']}"), total=None, info="")
        elif kind == "progress" and p is not None and e["run_id"] in self.bars:
            rate = e["step"] / max(time.monotonic() - self.started.get(e["run_id"], time.monotonic()), 1e-9)
            vals = " ".join(f"{k} {v:.4g}" for k, v in e["values"].items())
            p.update(self.bars[e["run_id"]], completed=e["step"], total=e["total"], info=escape(f"{rate:.1f}/s {vals}"))
        elif kind == "run":
            if p is not None and e["run_id"] in self.bars:
                p.remove_task(self.bars.pop(e["run_id"]))
                if self.sweep_task is not None:
                    p.advance(self.sweep_task)
            if e["status"] == "failed":
                self.console.print(f"[red]run {e['run_id']} ({escape(e['point'])}) failed:[/] {escape(str(e['error']))}",
                                   highlight=False)
                if e.get("traceback"):
                    self.console.print(e["traceback"], highlight=False, markup=False)
        elif kind == "log" and not self.quiet:
            self.console.print(f"[dim]·[/] run {e['run_id']}: {escape(e['text'])}", highlight=False)


@experiment_app.command("run")
@cli_errors
def run_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Experiment: counting, concepts, word2vec or cooccurrence (see `explorer experiment list`).")],
    preset: Annotated[Optional[str], typer.Option(help="smoke (minutes on 2 CPU cores) or paper (the published setting).")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting: --set d=16 --set ms=5,10,20 (repeatable).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Points run in parallel (local processes, or Ray tasks).")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run on a Ray cluster at this address ('local' starts one here). Needs the 'ray' extra: pip install 'explorer\\[ray]'.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the latest sweep with the same settings, skipping its finished points.")] = False,
    png: Annotated[Optional[Path], typer.Option(help="Write the sweep's figure (matplotlib PNG) here.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (settings, points, estimated time) and exit.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start a sweep estimated to take over 10 minutes without a --preset.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    events: Annotated[bool, typer.Option("--events", hidden=True, help="Stream events as JSON lines on stdout (for the TUI).")] = False,
) -> None:
    """Run an experiment's sweep; Ctrl-C cancels cleanly (finished points are kept; --resume skips them)."""
    from explorer.experiments import runner

    plan = runner.plan(name, preset, runner.parse_settings(settings or []))
    if dry_run:
        print_json(plan.to_dict()) if json_out else _print_plan(plan, workers)
        return
    if plan.needs_confirmation(workers) and not yes:
        fail(f"{plan.describe(workers)}; add --yes to start it, or choose a shorter --preset "
             f"(see --dry-run and `explorer experiment list`)")
    root = state(ctx).engine().root
    if events:
        _stream({"kind": "plan", "points": len(plan.points), "estimated_seconds": plan.estimate(workers),
                 "text": plan.describe(workers)})
    elif not quiet:
        sys.stderr.write(plan.describe(workers) + "\n")  # one line, never wrapped: easy to grep
    with _Display(quiet or json_out or events) as display:
        handler = _stream if events else display
        sweep = runner.Sweep(root, plan, workers=workers, ray_address=ray, resume=resume, on_event=handler)
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: Any) -> None:
            if sweep.cancelled:
                raise KeyboardInterrupt
            display.console.print("[yellow]cancelling: the running points stop at their next check (Ctrl-C again to abort)[/]")
            sweep.cancel()

        signal.signal(signal.SIGINT, on_sigint)
        try:
            result = sweep.run()
        finally:
            signal.signal(signal.SIGINT, previous)
    if png is not None and result.summary is not None and result.summary.figure is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        result.summary.figure.savefig(png, dpi=130, bbox_inches="tight")
    if events:
        _stream({"kind": "done", **result.to_dict(), "text": result.summary.text if result.summary else None})
    elif json_out:
        print_json({**result.to_dict(), "text": result.summary.text if result.summary else None})
    else:
        _print_result(result, png)
    kept = sum(r["status"] == "finished" for r in result.runs) + result.skipped
    if result.status == "cancelled":
        fail(f"cancelled: {kept} finished points kept in sweep {result.sweep_id}; "
             f"continue with the same command and --resume", 130)
    if result.status == "failed":
        bad = next(r for r in result.runs if r["status"] == "failed")
        fail(f"{sum(r['status'] == 'failed' for r in result.runs)} point(s) failed, e.g. {bad['point']}: {bad['error']}")


def _print_plan(plan: Any, workers: int) -> None:
    """The effective settings (defaults, then the preset, then --set), the points and the estimate."""
    from explorer.experiments import base
    from explorer.experiments.checks import show

    how = [f"preset {plan.preset}"] if plan.preset else []
    how += [f"--set {k}={show(v)}" for k, v in plan.settings.items()]
    typer.echo(f"{plan.experiment} with {', '.join(how) if how else 'its default settings'}")
    typer.echo("settings: " + " ".join(f"{f}={show(getattr(plan.config, f))}" for f in base.config_dict(plan.config)))
    typer.echo(f"points: {'; '.join(p.label for p in plan.points)}")
    typer.echo(plan.describe(workers))


def _stream(event: dict) -> None:
    from explorer.cli.common import clean

    sys.stdout.write(json.dumps(clean({k: v for k, v in event.items() if k != "traceback"}), ensure_ascii=False) + "\n")
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
    from explorer.experiments import runner

    engine = state(ctx).engine()
    items = runner.sweeps(engine.catalog, sweep_id, limit)
    if sweep_id is not None and not items:
        fail(f"no sweep {sweep_id}; see `explorer experiment status`")
    runs = []
    if sweep_id is not None:
        runs = [{"run_id": r[0], "point": r[1], "status": r[2], "summary": json.loads(r[3]) if r[3] else None,
                 "last_step": r[4], "error": r[5]}
                for r in engine.catalog.query(
                    "SELECT r.run_id, r.point, r.status, r.summary, (SELECT max(step) FROM metrics m WHERE m.run_id = r.run_id), r.error "
                    "FROM runs r WHERE sweep_id = ? ORDER BY run_id", [sweep_id])]
        items[0]["runs"] = runs
    if json_out:
        print_json(items)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="experiment sweeps")
    for col in ("sweep", "experiment", "preset", "status", "finished", "running", "other", "started"):
        table.add_column(col)
    for s in items:
        table.add_row(str(s["sweep_id"]), escape(s["experiment"]), escape(s["preset"] or ""), s["status"], str(s["finished_runs"]),
                      str(s["running_runs"]), str(s["other_runs"]), s["started"][:19])
    console = Console()
    console.print(table)
    for r in runs:
        console.print(f"  run {r['run_id']} {r['point']}: {r['status']} (step {r['last_step']}) "
                      f"{json.dumps(r['summary'], ensure_ascii=False) if r['summary'] else r['error'] or ''}",
                      highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
