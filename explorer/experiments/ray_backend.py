"""Sweeps on Ray (optional extra ``explorer[ray]``): ``--ray ADDRESS`` or ``--ray local``.

Tasks run :func:`explorer.experiments.runner.execute` on the cluster; their events come
back through a Ray queue (sent in batches, twice a second) and a small actor carries
the cancel flag. The driver stores everything, as for local sweeps, so the cluster
needs no access to the data root.
"""

from __future__ import annotations

import os
import time
from typing import Any

from explorer.errors import ExplorerError

SEND_SECONDS = 0.5


def _ray():
    try:
        import ray
    except ImportError:
        raise ExplorerError("--ray needs Ray: pip install 'explorer[ray]'") from None
    return ray


def connect(address: str) -> Any:
    ray = _ray()
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ExplorerError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return ray


def _remote_execute(name, config, run_id, seed, threads, events, flag):  # runs on a Ray worker
    import ray

    from explorer.experiments.runner import execute

    buffer: list[dict] = []
    state = {"sent": time.monotonic(), "checked": 0.0, "cancelled": False}

    def emit(event: dict) -> None:
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

    out = execute(name, config, run_id, seed, threads, None, emit, cancelled)
    if buffer:
        events.put_nowait_batch(list(buffer))
    return out


def run(sweep, sweep_id: int, todo: list, result) -> None:
    from explorer.experiments import base

    ray = connect(sweep.ray_address)
    from ray.util.queue import Empty, Queue

    @ray.remote
    class Flag:
        def __init__(self) -> None:
            self.value = False

        def set(self) -> None:
            self.value = True

        def is_set(self) -> bool:
            return self.value

    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    gpus = ray.cluster_resources().get("GPU", 0)
    threads = max(1, cpus // sweep.workers)
    task = ray.remote(_remote_execute).options(num_cpus=threads, num_gpus=(gpus / sweep.workers) if gpus else 0)
    events, flag = Queue(), Flag.remote()
    running: dict[Any, tuple[int, Any]] = {}
    queue_points = list(todo)
    try:
        while queue_points or running:
            while queue_points and len(running) < sweep.workers and not sweep.cancelled:
                point = queue_points.pop(0)
                run_id, seed = sweep._start_run(sweep_id, point)
                sweep.on_event({"kind": "start", "run_id": run_id, "point": point.label})
                ref = task.remote(sweep.plan.experiment, base.config_dict(point.config), run_id, seed, threads, events, flag)
                running[ref] = (run_id, point)
            if sweep.cancelled:
                flag.set.remote()
                queue_points.clear()
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            _drain(sweep, events, Empty)
            for ref in ready:
                run_id, point = running.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the task or its node died
                    out = {"status": "failed", "error": f"Ray task failed: {str(exc).splitlines()[0]}"}
                _drain(sweep, events, Empty)
                result.runs.append(sweep._finish_run(run_id, point, out))
    finally:
        ray.kill(flag)


def _drain(sweep, events, empty) -> None:
    while True:
        try:
            batch = events.get_nowait_batch(max(1, events.qsize()))
        except empty:
            return
        if not batch:
            return
        for event in batch:
            sweep._event(event)
