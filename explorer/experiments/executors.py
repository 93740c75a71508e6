"""Where a sweep's points run. A sweep hands its points to an :class:`Executor`, which
runs them through the sweep's public :class:`Driver` interface:

* ``task = driver.begin(point)`` records the point's run row (and says so) before it starts;
* ``driver.report(event)`` passes on an event of a running point (metrics, progress, logs);
* ``driver.end(task, outcome)`` stores how it ended, as soon as it ends;
* ``driver.more()``, after each ``end``: points an adaptive sweep adds now that a result is
  in (an experiment searching, e.g. bisecting m for the counting threshold); queue them;
* ``driver.cancelled`` turns true once the user cancels: start no more points and let
  the running ones see it at their next ``ctx.check()``.

The executors here run points in this process (:class:`InProcess`) or in local worker
processes (:class:`ProcessPool`); :mod:`explorer.experiments.ray_backend` runs them on Ray.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from explorer.experiments.events import Event
from explorer.experiments.point import Outcome, PointTask, execute


class Driver(Protocol):
    """What an executor may use of the sweep that runs it."""

    @property
    def cancelled(self) -> bool: ...

    def begin(self, point: Any) -> PointTask: ...

    def report(self, event: Event) -> None: ...

    def end(self, task: PointTask, outcome: Outcome) -> None: ...

    def more(self) -> list[Any]: ...


class Executor(Protocol):
    workers: int  # points at a time (the estimate divides by it)

    def run(self, points: Sequence[Any], driver: Driver, root: str | None) -> None: ...


class InProcess:
    """One point after the other in this process, with all the CPU's threads."""

    workers = 1

    def run(self, points: Sequence[Any], driver: Driver, root: str | None) -> None:
        queue = list(points)
        while queue and not driver.cancelled:
            task = driver.begin(queue.pop(0))
            driver.end(task, execute(task, driver.report, lambda: driver.cancelled, os.cpu_count() or 1, root))
            queue += driver.more()


# -- local worker processes ----------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(events: Any, cancel: Any, driver_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; workers stop at ctx.check()
    _WORKER["events"], _WORKER["cancel"] = events, cancel
    threading.Thread(target=_orphan_watch, args=(driver_pid,), daemon=True).start()


def _orphan_watch(driver_pid: int) -> None:
    """Exit once the driver is gone (killed: this worker was handed to another parent): nobody
    would store what it trains, and an orphaned pool worker never notices by itself."""
    while os.getppid() == driver_pid:
        time.sleep(1.0)
    os._exit(0)


def _pool_execute(task: PointTask, threads: int, root: str | None) -> Outcome:
    return execute(task, _WORKER["events"].put, _WORKER["cancel"].is_set, threads, root)


class ProcessPool:
    """``workers`` points at a time in spawned processes (the CPU's threads shared out); their
    events come back through a queue. One point runs in this process."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)

    def run(self, points: Sequence[Any], driver: Driver, root: str | None) -> None:
        if self.workers == 1 or len(points) <= 1:  # (a search from one point goes on one at a time)
            InProcess().run(points, driver, root)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # never fork a process that may hold torch threads or CUDA
        events, cancel = ctx.Queue(), ctx.Event()
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(events, cancel, os.getpid())) as pool:
            self._loop(pool, list(points), driver, events, cancel, threads, root)

    def _loop(self, pool: Any, queue_points: list, driver: Driver, events: Any, cancel: Any, threads: int,
              root: str | None) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        running: dict[Any, PointTask] = {}
        while queue_points or running:
            while queue_points and len(running) < self.workers and not driver.cancelled:
                task = driver.begin(queue_points.pop(0))
                running[pool.submit(_pool_execute, task, threads, root)] = task
            if driver.cancelled:
                cancel.set()
                queue_points.clear()
            if not running:
                break
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, driver)
            for fut in finished:
                task = running.pop(fut)
                try:
                    out = fut.result()
                except Exception as exc:  # a worker died (killed, out of memory)
                    out = Outcome("failed", error=f"worker died: {exc}")
                _drain(events, driver)
                driver.end(task, out)
                queue_points += driver.more()


def _drain(events: Any, driver: Driver) -> None:
    import queue

    while True:
        try:
            driver.report(events.get_nowait())
        except (queue.Empty, EOFError, OSError):
            return


def local(workers: int = 1) -> Executor:
    """Points in this process (one worker) or in ``workers`` local processes."""
    return InProcess() if workers <= 1 else ProcessPool(workers)


__all__ = ["Driver", "Executor", "InProcess", "ProcessPool", "local"]
