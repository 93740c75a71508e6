"""Run an experiment's sweep: in this process, in local worker processes, or on Ray.

The catalog is written only here, by the driver: a row in ``runs`` before a point
starts, its metrics while it trains (buffered, flushed about once a second), its summary
and trained vectors as soon as it finishes. A killed sweep therefore keeps every
finished point, and ``resume=True`` skips them. Workers report through a queue and
stop at their next ``ctx.check()`` once the sweep is cancelled.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from explorer.errors import ExplorerError
from explorer.experiments import base, checks, registry
from explorer.store.catalog import Catalog, _next_id
from explorer.store.files import pid_alive

Handler = Callable[[dict], None]
FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class Point:
    index: int
    label: str
    overrides: dict[str, Any]
    config: Any


@dataclass(frozen=True)
class Plan:
    experiment: str
    preset: str | None
    config: Any
    points: list[Point]
    key: str
    settings: dict[str, Any] = field(default_factory=dict)  # the --set values, typed

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "preset": self.preset, "settings": json.loads(json.dumps(self.settings)),
                "config": base.config_dict(self.config), "points": [p.label for p in self.points],
                "estimated_seconds": self.estimate()}

    def estimate(self, workers: int = 1) -> float | None:
        """Rough seconds for the whole sweep (None: the experiment has no cost model)."""
        return checks.estimate(registry.get(self.experiment), self.points, workers)

    def needs_confirmation(self, workers: int = 1) -> bool:
        """A long sweep the user did not ask for by preset: it needs --yes."""
        seconds = self.estimate(workers)
        return self.preset is None and seconds is not None and seconds > checks.LONG_SWEEP_S

    def describe(self, workers: int = 1) -> str:
        """``counting: 12 points, estimated about 2 min (rough; ...)``."""
        seconds = self.estimate(workers)
        n = len(self.points)
        when = (f", estimated {checks.duration(seconds)} (a rough cost model, calibrated on one CPU core)"
                if seconds is not None else "")
        return f"{self.experiment}: {n} point{'s' if n != 1 else ''}{when}"


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


def _label(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "single"


def plan(name: str, preset: str | None = None, settings: dict[str, str] | None = None) -> Plan:
    """The sweep for ``name``: defaults, then the preset, then ``--set`` values."""
    exp = registry.get(name)
    config = exp.Config()
    if preset:
        if preset not in exp.presets:
            raise ExplorerError(f"experiment {name} has no preset {preset!r}; presets: {', '.join(exp.presets)}")
        config = base.apply(config, exp.presets[preset])
    config = base.apply(config, settings or {})
    checks.check_ranges(exp, config)
    points = [Point(i, _label(o), o, base.apply(config, o)) for i, o in enumerate(exp.points(config))]
    if not points:
        raise ExplorerError(f"the {name} sweep has no points with these settings")
    checks.check_plan(exp, config, points, list(settings or {}))
    blob = json.dumps({"experiment": name, "config": base.config_dict(config)}, sort_keys=True)
    typed = {k: getattr(config, k) for k in settings or {}}
    return Plan(name, preset, config, points, hashlib.sha256(blob.encode()).hexdigest()[:16], typed)


def parse_settings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExplorerError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


# -- the worker side -------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(events: Any, cancel: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; workers stop at ctx.check()
    _WORKER["events"], _WORKER["cancel"] = events, cancel


def _pool_execute(name: str, config: dict, run_id: int, seed: int, threads: int, root: str | None) -> dict:
    return execute(name, config, run_id, seed, threads, root, _WORKER["events"].put, _WORKER["cancel"].is_set)


def execute(name: str, config: dict, run_id: int, seed: int, threads: int, root: str | None,
            emit: Handler, cancelled: Callable[[], bool]) -> dict:
    """Run one point (in whatever process this is) and return what the driver stores."""
    exp = registry.get(name)
    cfg = base.apply(exp.Config(), config)
    try:
        import torch

        torch.set_num_threads(max(1, threads))
        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        device = "cpu"
    ctx = base.RunContext(run_id, seed, device, emit, cancelled, threads, Path(root) if root else None)
    started = time.perf_counter()
    try:
        out = exp.run(cfg, ctx)
    except base.Cancelled:
        return {"status": "cancelled"}
    except ExplorerError as exc:
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:  # a bug in an experiment: keep the sweep going, keep the traceback
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return {"status": "finished", "summary": out.summary, "seconds": time.perf_counter() - started,
            "vectors": [(v.name, v.words, v.matrix, v.note) for v in out.vectors], "rows": out.rows}


# -- the driver ------------------------------------------------------------------------
class Sweep:
    """One sweep over a plan; ``run()`` blocks, ``cancel()`` may be called from anywhere."""

    def __init__(self, root: Path, plan: Plan, workers: int = 1, ray_address: str | None = None,
                 resume: bool = False, on_event: Handler | None = None):
        self.root = Path(root)
        self.catalog = Catalog(self.root)
        self.plan = plan
        self.workers = max(1, workers)
        self.ray_address = ray_address
        self.resume = resume
        self.on_event = on_event or (lambda e: None)
        self._cancel = threading.Event()
        self._pending: list[tuple] = []
        self._last_flush = time.monotonic()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- catalog writes --------------------------------------------------------------
    def _write(self, sql: str, params: list | None = None, many: list | None = None) -> None:
        con = self.catalog.writer()
        try:
            if many is not None:
                con.executemany(sql, many)
            else:
                con.execute(sql, params or [])
        finally:
            con.close()

    def _flush(self, force: bool = False) -> None:
        if self._pending and (force or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            batch, self._pending = self._pending, []
            self._write("INSERT INTO metrics VALUES (?, ?, ?, ?)", many=batch)
            self._last_flush = time.monotonic()

    def _event(self, event: dict) -> None:
        if event.get("kind") == "metric":
            self._pending.append((event["run_id"], event["step"], event["name"], event["value"]))
            self._flush()
        self.on_event(event)

    def _open_sweep(self) -> tuple[int, set[str]]:
        """A new sweep row, or (resume) the latest one with the same key and its finished points."""
        p = self.plan
        self.catalog.migrate()
        if self.resume:
            found = self.catalog.query(
                "SELECT sweep_id FROM sweeps WHERE key = ? ORDER BY sweep_id DESC LIMIT 1", [p.key])
            if found:
                sweep_id = found[0][0]
                done = {r[0] for r in self.catalog.query(
                    "SELECT point FROM runs WHERE sweep_id = ? AND status = 'finished'", [sweep_id])}
                self._write("UPDATE runs SET status = 'interrupted' WHERE sweep_id = ? AND status = 'running'", [sweep_id])
                self._write("UPDATE sweeps SET status = 'running', host = ?, pid = ?, finished = NULL WHERE sweep_id = ?",
                            [socket.gethostname(), os.getpid(), sweep_id])
                return sweep_id, done
        con = self.catalog.writer()
        try:
            sweep_id = _next_id(con, "sweeps", "sweep_id")
            con.execute(
                "INSERT INTO sweeps (sweep_id, experiment, preset, config, key, status, host, pid) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                [sweep_id, p.experiment, p.preset, json.dumps(base.config_dict(p.config)), p.key,
                 socket.gethostname(), os.getpid()])
        finally:
            con.close()
        return sweep_id, set()

    def _start_run(self, sweep_id: int, point: Point) -> tuple[int, int]:
        seed = int(getattr(point.config, "seed", 0) or 0) + point.index
        con = self.catalog.writer()
        try:
            run_id = _next_id(con, "runs", "run_id")
            con.execute(
                "INSERT INTO runs (run_id, sweep_id, experiment, point, config, seed, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                [run_id, sweep_id, self.plan.experiment, point.label, json.dumps(base.config_dict(point.config)), seed])
        finally:
            con.close()
        return run_id, seed

    def _finish_run(self, run_id: int, point: Point, out: dict) -> dict:
        self._flush(force=True)
        status = out["status"]
        for name, words, matrix, note in out.get("vectors", []):
            from explorer.store.interchange import import_arrays

            import_arrays(self.root, name, words, matrix, source=f"experiment run {run_id}",
                          fmt=f"trained:{self.plan.experiment}", replace=True)
            self.on_event({"kind": "log", "run_id": run_id, "text": f"vectors stored as model {name!r}"})
        rows = [(run_id, tbl, json.dumps(r)) for tbl, rs in out.get("rows", {}).items() for r in rs]
        if rows:
            self._write("INSERT INTO experiment_rows VALUES (?, ?, ?)", many=rows)
        self._write(
            "UPDATE runs SET status = ?, finished = current_timestamp, summary = ?, error = ? WHERE run_id = ?",
            [status, json.dumps(out.get("summary")) if "summary" in out else None, out.get("error"), run_id])
        record = {"run_id": run_id, "point": point.label, "status": status, "summary": out.get("summary"),
                  "error": out.get("error")}
        self.on_event({"kind": "run", **record, "traceback": out.get("traceback")})
        return record

    # -- execution ---------------------------------------------------------------------
    def run(self) -> SweepResult:
        sweep_id, done = self._open_sweep()
        todo = [p for p in self.plan.points if p.label not in done]
        result = SweepResult(sweep_id, self.plan.experiment, "running", skipped=len(self.plan.points) - len(todo))
        self.on_event({"kind": "sweep", "sweep_id": sweep_id, "total": len(self.plan.points),
                       "skipped": result.skipped, "todo": len(todo)})
        try:
            if self.ray_address:
                self._run_ray(sweep_id, todo, result)
            elif self.workers > 1 and len(todo) > 1:
                self._run_pool(sweep_id, todo, result)
            else:
                self._run_here(sweep_id, todo, result)
        finally:
            self._flush(force=True)
            self._close(sweep_id, result)
        return result

    def _run_here(self, sweep_id: int, todo: list[Point], result: SweepResult) -> None:
        root = str(self.root)
        for point in todo:
            if self.cancelled:
                break
            run_id, seed = self._start_run(sweep_id, point)
            self.on_event({"kind": "start", "run_id": run_id, "point": point.label})
            out = execute(self.plan.experiment, base.config_dict(point.config), run_id, seed,
                          os.cpu_count() or 1, root, self._event, self._cancel.is_set)
            result.runs.append(self._finish_run(run_id, point, out))

    def _run_pool(self, sweep_id: int, todo: list[Point], result: SweepResult) -> None:
        import multiprocessing as mp
        import queue as queue_mod
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        ctx = mp.get_context("spawn")  # never fork a process that may hold torch threads or CUDA
        events, cancel = ctx.Queue(), ctx.Event()
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        running: dict[Any, tuple[int, Point]] = {}
        queue_points = list(todo)
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=(events, cancel)) as pool:
            while queue_points or running:
                while queue_points and len(running) < self.workers and not self.cancelled:
                    point = queue_points.pop(0)
                    run_id, seed = self._start_run(sweep_id, point)
                    self.on_event({"kind": "start", "run_id": run_id, "point": point.label})
                    fut = pool.submit(_pool_execute, self.plan.experiment, base.config_dict(point.config),
                                      run_id, seed, threads, str(self.root))
                    running[fut] = (run_id, point)
                if self.cancelled:
                    cancel.set()
                    queue_points.clear()
                if not running:
                    break
                finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                self._drain(events, queue_mod.Empty)
                for fut in finished:
                    run_id, point = running.pop(fut)
                    try:
                        out = fut.result()
                    except Exception as exc:  # a worker died (killed, out of memory)
                        out = {"status": "failed", "error": f"worker died: {exc}"}
                    self._drain(events, queue_mod.Empty)
                    result.runs.append(self._finish_run(run_id, point, out))

    def _drain(self, events: Any, empty: type) -> None:
        while True:
            try:
                self._event(events.get_nowait())
            except (empty, EOFError, OSError):
                return

    def _run_ray(self, sweep_id: int, todo: list[Point], result: SweepResult) -> None:
        from explorer.experiments import ray_backend

        ray_backend.run(self, sweep_id, todo, result)

    def _close(self, sweep_id: int, result: SweepResult) -> None:
        statuses = [r["status"] for r in result.runs]
        if self.cancelled or "cancelled" in statuses:
            result.status = "cancelled"
        elif "failed" in statuses:
            result.status = "failed"
        else:
            result.status = "finished"
        finished = self.catalog.query(
            "SELECT config, summary FROM runs WHERE sweep_id = ? AND status = 'finished' ORDER BY run_id", [sweep_id])
        summary_json = None
        if finished and result.status == "finished":
            exp = registry.get(self.plan.experiment)
            pairs = [(base.apply(exp.Config(), json.loads(c)), json.loads(s) if s else {}) for c, s in finished]
            result.summary = exp.summarize(self.plan.config, pairs)
            summary_json = json.dumps(_jsonable(result.summary.result))
        self._write("UPDATE sweeps SET status = ?, finished = current_timestamp, summary = ? WHERE sweep_id = ?",
                    [result.status, summary_json, sweep_id])
        self.catalog.close()


def _jsonable(obj: Any) -> Any:
    from explorer.jsonsafe import clean

    return clean(obj)


def sweeps(catalog: Catalog, sweep_id: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Sweeps with run counts by status; a 'running' sweep whose driver is gone shows 'interrupted'."""
    if not catalog.exists():
        return []
    where, params = ("WHERE s.sweep_id = ?", [sweep_id]) if sweep_id is not None else ("", [])
    rows = catalog.query(
        f"""SELECT s.sweep_id, s.experiment, s.preset, s.status, s.host, s.pid, s.started, s.finished,
                   count(r.run_id) FILTER (WHERE r.status = 'finished'),
                   count(r.run_id) FILTER (WHERE r.status = 'running'),
                   count(r.run_id) FILTER (WHERE r.status IN ('failed', 'cancelled', 'interrupted')), s.summary
            FROM sweeps s LEFT JOIN runs r USING (sweep_id) {where}
            GROUP BY ALL ORDER BY s.sweep_id DESC LIMIT {int(limit)}""", params)
    out = []
    for sid, exp, preset, status, host, pid, started, finished, n_ok, n_run, n_bad, summary in rows:
        if status == "running" and not _alive(host, pid):
            status = "interrupted"
        out.append({"sweep_id": sid, "experiment": exp, "preset": preset, "status": status,
                    "finished_runs": n_ok, "running_runs": n_run if status == "running" else 0, "other_runs": n_bad,
                    "started": str(started), "finished": str(finished) if finished else None,
                    "summary": json.loads(summary) if summary else None})
    return out


def _alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return True  # cannot tell from here
    return pid_alive(pid)


__all__ = ["Plan", "Point", "Sweep", "SweepResult", "execute", "parse_settings", "plan", "sweeps"]
