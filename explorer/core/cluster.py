"""Ray, optional (extra ``explorer[ray]``), shared by sweeps and ``export-states --ray``:
connecting to a cluster by address (or starting one here with ``local``) and sharing its
CPUs and GPUs out between workers. Ray itself is imported only when asked for."""

from __future__ import annotations

from typing import Any

from explorer.errors import ExplorerError


def ray_module() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExplorerError("--ray needs Ray: pip install 'explorer[ray]'") from None
    return ray


def connect_cluster(address: str) -> Any:
    """Connect to the Ray cluster at ``address`` (``HOST:PORT``) or, with ``local``, start a
    fresh one in this process; a bad address is a one-line error."""
    ray = ray_module()
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ExplorerError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return ray


def worker_share(ray: Any, workers: int) -> tuple[float, float, int]:
    """``(num_cpus, num_gpus, threads)`` for each of ``workers`` actors: the cluster's CPUs
    shared out (never more than the largest node has, so every actor can be placed; below
    one CPU a fraction) and a GPU each, or a share of one, when the cluster has GPUs."""
    total = ray.cluster_resources()
    per_node = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")] or [total.get("CPU", 1)]
    cpus = total.get("CPU", 1) / workers
    num_cpus = float(min(int(cpus), int(max(per_node)))) if cpus >= 1 else round(cpus, 4)
    gpus = total.get("GPU", 0)
    num_gpus = (1.0 if gpus >= workers else round(gpus / workers, 4)) if gpus else 0.0
    return num_cpus, num_gpus, max(1, int(num_cpus))


__all__ = ["connect_cluster", "ray_module", "worker_share"]
