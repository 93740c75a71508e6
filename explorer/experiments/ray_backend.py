"""Sweeps on Ray (optional extra ``explorer[ray]``): ``--ray ADDRESS`` or ``--ray local``.

:class:`RayExecutor` is an executor (see :mod:`explorer.experiments.executors`): tasks run
:func:`explorer.experiments.point.execute` on the cluster; their events come back
through a Ray queue (sent in batches, twice a second) and a small actor carries the
cancel flag. The sweep's driver stores everything, as for local sweeps, so the cluster
needs no access to the data root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from explorer.core.cluster import connect_cluster
from explorer.experiments.executors import Driver
from explorer.experiments.point import Outcome, PointTask, execute

SEND_SECONDS = 0.5


def _remote_execute(task: PointTask, threads: int, events: Any, flag: Any) -> Outcome:  # runs on a Ray worker
    import ray

    buffer: list = []
    state = {"sent": time.monotonic(), "checked": 0.0, "cancelled": False}

    def emit(event: Any) -> None:
        buffer.append(event)
        if time.monotonic() - state["sent"] >= SEND_SECONDS:
            events.put_nowait_batch(list(buffer))
            buffer.clear()
            state["sent"] = time.monotonic()

    def cancelled() -> bool:
        now = time.monotonic()
        if now - state["checked"] >= SEND_SECONDS:
            state["checked"] = now
            state["cancelled"] = ray.get(flag.is_set.remote())
        return state["cancelled"]

    out = execute(task, emit, cancelled, threads, None)
    if buffer:
        events.put_nowait_batch(list(buffer))
    return out


class RayExecutor:
    """``workers`` points at a time as Ray tasks on the cluster at ``address`` ('local':
    start one here); each task gets the cluster's CPUs (and GPUs) shared out."""

    def __init__(self, address: str, workers: int = 1):
        self.address = address
        self.workers = max(1, workers)

    def run(self, points: Sequence[Any], driver: Driver, root: str | None) -> None:
        """``root`` is not used: the tasks read nothing from the data root."""
        ray = connect_cluster(self.address)
        from ray.util.queue import Queue

        cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
        gpus = ray.cluster_resources().get("GPU", 0)
        threads = max(1, cpus // self.workers)
        remote = ray.remote(_remote_execute).options(num_cpus=threads, num_gpus=(gpus / self.workers) if gpus else 0)
        events, flag = Queue(), _flag_actor(ray).remote()
        try:
            self._loop(ray, lambda task: remote.remote(task, threads, events, flag), list(points), driver, events, flag)
        finally:
            ray.kill(flag)

    def _loop(self, ray: Any, submit: Any, queue_points: list, driver: Driver, events: Any, flag: Any) -> None:
        running: dict[Any, PointTask] = {}
        while queue_points or running:
            while queue_points and len(running) < self.workers and not driver.cancelled:
                task = driver.begin(queue_points.pop(0))
                running[submit(task)] = task
            if driver.cancelled:
                flag.set.remote()
                queue_points.clear()
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            _drain(events, driver)
            for ref in ready:
                task = running.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the task or its node died
                    out = Outcome("failed", error=f"Ray task failed: {str(exc).splitlines()[0]}")
                _drain(events, driver)
                driver.end(task, out)
                queue_points += driver.more()


def _flag_actor(ray: Any) -> Any:
    @ray.remote
    class Flag:
        def __init__(self) -> None:
            self.value = False

        def set(self) -> None:
            self.value = True

        def is_set(self) -> bool:
            return self.value

    return Flag


def _drain(events: Any, driver: Driver) -> None:
    from ray.util.queue import Empty

    while True:
        try:
            batch = events.get_nowait_batch(max(1, events.qsize()))
        except Empty:
            return
        if not batch:
            return
        for event in batch:
            driver.report(event)


__all__ = ["RayExecutor", "connect_cluster"]
