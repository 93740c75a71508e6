"""Experiment sweeps, for the CLI and the TUI: the experiments, a sweep's plan, running it
here (with its events) or in a child process (the same events as JSON lines), and the
sweeps recorded in the catalog.

Events: :mod:`explorer.experiments.events` documents the stream (``PlanStated``,
``SweepOpened``, then per point ``RunStarted``, ``RunMetric``, ``RunProgress``,
``RunLog``, ``RunFinished``, and ``SweepDone`` last); the classes are re-exported here.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from explorer.experiments import base, executors, registry, runner
from explorer.experiments.events import (
    Event,
    PlanStated,
    RunFinished,
    RunLog,
    RunMetric,
    RunProgress,
    RunStarted,
    SweepDone,
    SweepOpened,
    from_json_line,
    to_json_line,
)
from explorer.experiments.runner import Plan, Sweep, SweepResult
from explorer.store.files import pid_alive
from explorer.store.sweeps import RunRow, SweepRow, SweepStore

if TYPE_CHECKING:
    from explorer.services.engine import Engine


# -- the experiments -----------------------------------------------------------------------
@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    description: str
    presets: dict[str, dict[str, Any]]
    settings: dict[str, Any]  # the defaults
    types: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def experiment_names() -> list[str]:
    """The built-in experiments."""
    return registry.names()


def experiments() -> list[ExperimentInfo]:
    """Every built-in experiment with its presets and settings (their defaults and types)."""
    out = []
    for name in registry.names():
        exp = registry.get(name)
        out.append(ExperimentInfo(name, exp.description, exp.presets, base.config_dict(exp.Config()),
                                  {f.name: str(f.type) for f in dataclasses.fields(exp.Config)}))
    return out


def presets(name: str) -> list[str]:
    """The presets of experiment ``name`` (a built-in one or ``module:ATTR``)."""
    return list(registry.get(name).presets)


def settings_for(name: str, preset: str | None = None) -> dict[str, Any]:
    """Experiment ``name``'s settings with ``preset`` applied (JSON values): a form's defaults."""
    exp = registry.get(name)
    return base.config_dict(base.apply(exp.Config(), exp.presets.get(preset or "", {})))


# -- planning and running ------------------------------------------------------------------
@dataclass(frozen=True)
class SweepRequest:
    """Which sweep: an experiment, a preset, and ``key=value`` settings (as ``--set`` takes them)."""

    experiment: str
    preset: str | None = None
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOptions:
    """How a sweep runs: points in parallel (local processes, or Ray tasks when ``ray`` names
    a cluster address or 'local'), and whether to continue the latest sweep with the same settings."""

    workers: int = 1
    ray: str | None = None
    resume: bool = False


def plan(request: SweepRequest) -> Plan:
    """The checked plan (points, effective settings, estimate); ExplorerError if a setting is wrong."""
    return runner.make_plan(request.experiment, request.preset or None, runner.parse_settings(request.settings))


def _executor(options: RunOptions) -> executors.Executor:
    if options.ray:
        from explorer.experiments.ray_backend import RayExecutor

        return RayExecutor(options.ray, options.workers)
    return executors.local(options.workers)


def start(engine: "Engine", plan: Plan, options: RunOptions = RunOptions(),
          on_event: Callable[[Event], None] | None = None) -> Sweep:
    """A sweep ready to run in this process: ``.run()`` blocks and returns a
    :class:`SweepResult`; ``.cancel()`` (from any thread or a signal handler) stops it at the
    running points' next check. ``on_event`` gets every event, on the thread that runs it."""
    return Sweep(engine.catalog, plan, _executor(options), options.resume, on_event)


def run(engine: "Engine", plan: Plan, options: RunOptions = RunOptions(),
        on_event: Callable[[Event], None] | None = None) -> SweepResult:
    """Run the sweep here, to the end."""
    return start(engine, plan, options, on_event).run()


def save_figure(result: SweepResult, path: Path) -> bool:
    """Write the sweep's figure as a PNG; False when the sweep has none."""
    if result.summary is None or result.summary.figure is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    result.summary.figure.savefig(path, dpi=130, bbox_inches="tight")
    return True


# -- a sweep in a child process --------------------------------------------------------------
class SweepProcess:
    """A sweep run by ``explorer experiment run NAME --jsonl`` in a child process, so that
    training neither competes with the caller for the GIL nor shares its torch threads, and
    can always be stopped. :meth:`events` yields its events as they come; :meth:`cancel` is
    the command's own Ctrl-C (finished points are kept); :meth:`wait` its exit."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=os.environ.copy())

    def events(self) -> Iterator[Event]:
        for line in self._proc.stdout:
            event = from_json_line(line)
            if event is not None:
                yield event

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def cancel(self) -> None:
        if self.running:
            self._proc.send_signal(signal.SIGINT)

    def wait(self) -> tuple[int, str]:
        """The exit code and the last line on stderr (a failed sweep's one-line error)."""
        err = self._proc.stderr.read().strip().splitlines()
        return self._proc.wait(), err[-1] if err else ""


def command(root: Path, request: SweepRequest, options: RunOptions = RunOptions(), yes: bool = False) -> list[str]:
    """The ``explorer experiment run ... --jsonl`` command line for this sweep."""
    argv = [sys.executable, "-m", "explorer", "--root", str(root), "experiment", "run", request.experiment, "--jsonl"]
    if request.preset:
        argv += ["--preset", request.preset]
    for item in request.settings:
        argv += ["--set", item]
    if options.workers != 1:
        argv += ["--workers", str(options.workers)]
    if options.ray:
        argv += ["--ray", options.ray]
    argv += ["--resume"] if options.resume else []
    return argv + (["--yes"] if yes else [])


def spawn(root: Path, request: SweepRequest, options: RunOptions = RunOptions(), yes: bool = False) -> SweepProcess:
    """Start the sweep in a child process (``yes``: also when it is long and has no preset)."""
    return SweepProcess(command(root, request, options, yes))


# -- recorded sweeps -------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepStatus:
    """A recorded sweep; a 'running' sweep whose driver is gone shows as 'interrupted'."""

    sweep_id: int
    experiment: str
    preset: str | None
    status: str
    finished_runs: int
    running_runs: int
    other_runs: int
    started: str
    finished: str | None
    summary: dict[str, Any] | None
    runs: tuple[RunRow, ...] | None = None  # with status(engine, sweep_id)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "runs"}
        if self.runs is not None:
            out["runs"] = [dataclasses.asdict(r) for r in self.runs]
        return out


def _alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return True  # cannot tell from here
    return pid_alive(pid)


def _status(row: SweepRow, runs: list[RunRow] | None = None) -> SweepStatus:
    status = "interrupted" if row.status == "running" and not _alive(row.host, row.pid) else row.status
    return SweepStatus(row.sweep_id, row.experiment, row.preset, status, row.finished_runs,
                       row.running_runs if status == "running" else 0, row.other_runs, str(row.started),
                       str(row.finished) if row.finished else None, row.summary,
                       tuple(runs) if runs is not None else None)


def recent(engine: "Engine", limit: int = 20) -> list[SweepStatus]:
    """The latest ``limit`` sweeps, newest first, with their runs counted by status."""
    return [_status(r) for r in SweepStore(engine.catalog).sweeps(None, limit)]


def status(engine: "Engine", sweep_id: int) -> SweepStatus | None:
    """Sweep ``sweep_id`` with its runs (each with the last step it recorded); None if there is none."""
    store = SweepStore(engine.catalog)
    with engine.catalog.session():
        rows = store.sweeps(sweep_id, 1)
        return _status(rows[0], store.runs(sweep_id)) if rows else None


__all__ = [
    "Event", "ExperimentInfo", "Plan", "PlanStated", "RunFinished", "RunLog", "RunMetric", "RunOptions", "RunProgress",
    "RunStarted", "Sweep", "SweepDone", "SweepOpened", "SweepProcess", "SweepRequest", "SweepResult", "SweepStatus",
    "command", "experiment_names", "experiments", "from_json_line", "plan", "presets", "recent", "run", "save_figure",
    "settings_for", "spawn", "start", "status", "to_json_line",
]
