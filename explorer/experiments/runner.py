"""Plan an experiment's sweep and drive it: the catalog is written only here, by the driver.

An experiment may search instead of running a fixed grid: with ``next_points(config,
finished, pending)`` it is asked, each time a point ends, which points to add given the
results so far (the counting experiment bisects m for each d this way). Its plan then
holds the first points, and ``expected_points(config)`` the points it expects to run in
all, for the estimate. A search point's seed comes from its label, not its place in the
order, so that a search gives the same runs whatever order the workers finish in.

A row in ``runs`` is written before a point starts, its metrics while it trains (buffered,
flushed about once a second), its summary and trained vectors as soon as it finishes. A
killed sweep therefore keeps every finished point, and ``resume=True`` skips them. Where
the points run is the executor's business (:mod:`explorer.experiments.executors`, or
:mod:`explorer.experiments.ray_backend`); it calls back through the sweep's public
:class:`~explorer.experiments.executors.Driver` methods. What happens is reported as the
events of :mod:`explorer.experiments.events`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import ExplorerError
from explorer.experiments import base, checks, registry
from explorer.experiments.events import (
    Event,
    PlanStated,
    RunFinished,
    RunLog,
    RunMetric,
    RunStarted,
    SweepDone,
    SweepOpened,
)
from explorer.experiments.executors import Executor, InProcess
from explorer.experiments.point import Outcome, PointTask
from explorer.jsonsafe import clean
from explorer.store.catalog import Catalog
from explorer.store.sweeps import NewSweep, SweepStore

Handler = Callable[[Event], None]
FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class Point:
    index: int
    label: str
    overrides: dict[str, Any]
    config: Any
    searched: bool = False  # a point of a search: its seed comes from its label

    @property
    def seed(self) -> int:
        """The run's seed: the config's seed plus the point's index (a grid) or a hash of its label (a search)."""
        offset = zlib.crc32(self.label.encode()) % 1_000_000 if self.searched else self.index
        return int(getattr(self.config, "seed", 0) or 0) + offset


@dataclass(frozen=True)
class Plan:
    experiment: str
    preset: str | None
    config: Any
    points: list[Point]  # a search: its first points
    key: str
    settings: dict[str, Any] = field(default_factory=dict)  # the --set values, typed
    expected: list[Point] | None = None  # a search: every point it expects to run (for the estimate)

    @property
    def searching(self) -> bool:
        return self.expected is not None

    def to_dict(self) -> dict[str, Any]:
        out = {"experiment": self.experiment, "preset": self.preset, "settings": json.loads(json.dumps(self.settings)),
               "config": base.config_dict(self.config), "points": [p.label for p in self.points],
               "estimated_seconds": self.estimate()}
        if self.expected is not None:
            out["search"] = {"first_points": len(self.points), "expected_points": len(self.expected),
                             "estimated_seconds_per_gpu": self.gpu_estimate()}
        return out

    def estimate(self, workers: int = 1) -> float | None:
        """Rough seconds for the whole sweep (None: the experiment has no cost model)."""
        return checks.estimate(registry.get(self.experiment), self.expected or self.points, workers)

    def gpu_estimate(self) -> float | None:
        """Rough seconds for the whole sweep on one GPU (None: no GPU cost model)."""
        return checks.gpu_estimate(registry.get(self.experiment), self.expected or self.points)

    def needs_confirmation(self, workers: int = 1) -> bool:
        """A long sweep the user did not ask for by preset, or one estimated at hours on this
        machine even with a preset (`--preset paper` on a laptop): it needs --yes."""
        seconds = self.estimate(workers)
        if seconds is None:
            return False
        return seconds > (checks.LONG_SWEEP_S if self.preset is None else checks.DAY_LONG_SWEEP_S)

    def describe(self, workers: int = 1) -> str:
        """``counting: 12 points, estimated about 2 min (rough; ...)``; a search says how many
        points it expects, and the time on one GPU where the experiment has a model of it."""
        seconds = self.estimate(workers)
        n = len(self.points)
        at_once = max(1, min(workers, os.cpu_count() or 1))
        when = (f", estimated {checks.duration(seconds)} on this machine ({at_once} at a time; a rough cost model, "
                f"calibrated on one CPU core)" if seconds is not None else "")
        if self.expected is None:
            return f"{self.experiment}: {n} point{'s' if n != 1 else ''}{when}"
        gpu = self.gpu_estimate()
        per_gpu = f"; on one GPU {checks.duration(gpu)} (a model of small-kernel steps, not measured)" if gpu else ""
        return (f"{self.experiment}: a search from {n} point{'s' if n != 1 else ''}, about {len(self.expected)} "
                f"runs expected{when}{per_gpu}")

    def outline(self, workers: int = 1) -> list[str]:
        """For people: how the settings came about, the effective settings, the points, the estimate."""
        how = [f"preset {self.preset}"] if self.preset else []
        how += [f"--set {k}={checks.show(v)}" for k, v in self.settings.items()]
        return [f"{self.experiment} with {', '.join(how) if how else 'its default settings'}",
                "settings: " + " ".join(f"{f}={checks.show(getattr(self.config, f))}" for f in base.config_dict(self.config)),
                f"points: {'; '.join(p.label for p in self.points)}",
                self.describe(workers)]


@dataclass
class SweepResult:
    sweep_id: int
    experiment: str
    status: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    summary: base.Summary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "experiment": self.experiment, "status": self.status,
                "skipped": self.skipped, "runs": self.runs,
                "summary": self.summary.result if self.summary else None}

    def done(self) -> SweepDone:
        """The last event of the sweep."""
        return SweepDone(**self.to_dict(), text=self.summary.text if self.summary else None)


def _label(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "single"


def _point(index: int, overrides: dict[str, Any], config: Any, searched: bool) -> Point:
    """The point that applies ``overrides`` to the sweep's ``config``."""
    return Point(index, _label(overrides), overrides, base.apply(config, overrides), searched)


def make_plan(name: str, preset: str | None = None, settings: dict[str, str] | None = None) -> Plan:
    """The sweep for ``name``: defaults, then the preset, then ``--set`` values."""
    exp = registry.get(name)
    config = exp.Config()
    if preset:
        if preset not in exp.presets:
            raise ExplorerError(f"experiment {name} has no preset {preset!r}; presets: {', '.join(exp.presets)}")
        config = base.apply(config, exp.presets[preset])
    config = base.apply(config, settings or {})
    checks.check_ranges(exp, config)
    searching = _searching(exp, config)
    points = [_point(i, o, config, searching) for i, o in enumerate(exp.points(config))]
    if not points:
        raise ExplorerError(f"the {name} sweep has no points with these settings")
    checks.check_plan(exp, config, points, list(settings or {}))
    expected = None
    if searching:
        expected = [_point(i, o, config, True) for i, o in enumerate(exp.expected_points(config))]
    blob = json.dumps({"experiment": name, "config": base.config_dict(config)}, sort_keys=True)
    typed = {k: getattr(config, k) for k in settings or {}}
    return Plan(name, preset, config, points, hashlib.sha256(blob.encode()).hexdigest()[:16], typed, expected)


def _searching(exp: Any, config: Any) -> bool:
    """Does ``exp`` search (rather than run its points alone) with these settings?"""
    searches = getattr(exp, "searches", None)
    return hasattr(exp, "next_points") and (searches is None or bool(searches(config)))


def parse_settings(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExplorerError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


class Sweep:
    """One sweep over a plan; ``run()`` blocks, ``cancel()`` may be called from any thread.
    For its executor it is the :class:`~explorer.experiments.executors.Driver`."""

    def __init__(self, catalog: Catalog, plan: Plan, executor: Executor | None = None, resume: bool = False,
                 on_event: Handler | None = None):
        self.catalog = catalog
        self.store = SweepStore(catalog)
        self.plan = plan
        self.executor = executor or InProcess()
        self.resume = resume
        self.on_event = on_event or (lambda e: None)
        self._cancel = threading.Event()
        self._pending: list[tuple] = []
        self._last_flush = time.monotonic()
        self._result: SweepResult | None = None
        self._open: dict[int, Point] = {}  # run id -> a begun point not yet ended
        # a search: the labels of every point run or handed out, those handed out and not ended, and the results
        self._seen: set[str] = set()
        self._waiting: dict[str, Point] = {}
        self._finished: list[tuple[Any, dict[str, Any]]] = []

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- the Driver interface, for executors ----------------------------------------
    def begin(self, point: Point) -> PointTask:
        """Record ``point``'s run row and announce it; the task to run."""
        config = base.config_dict(point.config)
        run_id = self.store.start_run(self._result.sweep_id, self.plan.experiment, point.label, config, point.seed)
        self._open[run_id] = point
        self.on_event(RunStarted(run_id, point.label))
        return PointTask(self.plan.experiment, config, run_id, point.seed, point.label)

    def report(self, event: Event) -> None:
        """An event of a running point; metrics are stored (flushed about once a second)."""
        if isinstance(event, RunMetric):
            self._pending.append((event.run_id, event.step, event.name, event.value))
            self._flush()
        self.on_event(event)

    def end(self, task: PointTask, out: Outcome) -> None:
        """Store how a point ended: its metrics, trained vectors, rows, status and summary."""
        self._flush(force=True)
        for name, words, matrix, note in out.vectors:
            from explorer.store.interchange import import_arrays

            import_arrays(self.catalog.root, name, words, matrix, source=f"experiment run {task.run_id}",
                          fmt=f"trained:{self.plan.experiment}", replace=True)
            self.on_event(RunLog(task.run_id, f"vectors stored as model {name!r}"))
        rows = [(tbl, r) for tbl, rs in out.rows.items() for r in rs]
        self.store.finish_run(task.run_id, out.status, out.summary, out.error, rows)
        point = self._open.pop(task.run_id, None)
        if point is not None and self.plan.searching:
            self._waiting.pop(point.label, None)
            if out.status == "finished":
                self._finished.append((point.config, out.summary))
        record = {"run_id": task.run_id, "point": task.label, "status": out.status, "summary": out.summary,
                  "error": out.error}
        self._result.runs.append(record)
        self.on_event(RunFinished(**record, traceback=out.traceback))

    def more(self) -> list[Point]:
        """A search's next points, given the results so far (none once a run failed or the user cancelled)."""
        if not self.plan.searching or self.cancelled or any(r["status"] != "finished" for r in self._result.runs):
            return []
        exp = registry.get(self.plan.experiment)
        pending = [pt.config for pt in self._waiting.values()]
        new = []
        for overrides in exp.next_points(self.plan.config, list(self._finished), pending):
            point = _point(len(self._seen), overrides, self.plan.config, True)
            if point.label not in self._seen:  # (a point asked for twice runs once)
                new.append(point)
                self._seen.add(point.label)
        self._waiting.update((pt.label, pt) for pt in new)
        return new

    # -- the sweep -------------------------------------------------------------------
    def run(self) -> SweepResult:
        p, workers = self.plan, self.executor.workers
        self.on_event(PlanStated(len(p.points), p.estimate(workers), p.describe(workers)))
        sweep_id, done = self.store.open(
            NewSweep(p.experiment, p.preset, base.config_dict(p.config), p.key, socket.gethostname(), os.getpid()),
            self.resume)
        todo = [pt for pt in p.points if pt.label not in done]
        result = self._result = SweepResult(sweep_id, p.experiment, "running", skipped=len(p.points) - len(todo))
        if p.searching:
            todo = self._start_search(sweep_id, done, todo)
            result.skipped = len(done)
        total = max(len(p.expected), result.skipped + len(todo)) if p.searching else len(p.points)
        self.on_event(SweepOpened(sweep_id, total, result.skipped, len(todo), p.searching))
        try:
            self.executor.run(todo, self, str(self.catalog.root))
        finally:
            self._flush(force=True)
            self._close(result)
        self.on_event(result.done())
        return result

    def _start_search(self, sweep_id: int, done: set[str], todo: list[Point]) -> list[Point]:
        """A search's first points: the plan's not yet run and, when resuming, those the
        search asks for next given the finished runs (which count as results already)."""
        exp = registry.get(self.plan.experiment)
        self._seen = set(done) | {pt.label for pt in todo}
        self._waiting = {pt.label: pt for pt in todo}
        if done:
            self._finished = [(base.apply(exp.Config(), c), s) for c, s in self.store.finished_runs(sweep_id)]
            todo = todo + self.more()
        return todo

    def _flush(self, force: bool = False) -> None:
        if self._pending and (force or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            batch, self._pending = self._pending, []
            self.store.add_metrics(batch)
            self._last_flush = time.monotonic()

    def _close(self, result: SweepResult) -> None:
        statuses = [r["status"] for r in result.runs]
        if self.cancelled or "cancelled" in statuses:
            result.status = "cancelled"
        elif "failed" in statuses:
            result.status = "failed"
        else:
            result.status = "finished"
        finished = self.store.finished_runs(result.sweep_id)
        summary = None
        if finished and result.status == "finished":
            exp = registry.get(self.plan.experiment)
            pairs = [(base.apply(exp.Config(), config), s) for config, s in finished]
            result.summary = exp.summarize(self.plan.config, pairs)
            summary = clean(result.summary.result)
        self.store.close(result.sweep_id, result.status, summary)


__all__ = ["Plan", "Point", "Sweep", "SweepResult", "make_plan", "parse_settings"]
