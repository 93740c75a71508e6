"""Ray, optional (extra ``explorer[ray]``), shared by sweeps and ``export-states --ray``:
connecting to a cluster by address (or starting one here with ``local``) and sharing its
CPUs and GPUs out between workers. Ray itself is imported only when asked for."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
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
    check_address(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ExplorerError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return ray


@contextmanager
def cluster_session(address: str) -> Iterator[Any]:
    """``connect_cluster(address)`` for the length of a block; a connection this block made
    is closed after it (a local cluster it started stops), so the process is left as it was
    found and a later sweep in it starts Ray with its own environment."""
    ray = ray_module()
    started = not ray.is_initialized()
    connect_cluster(address)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def check_address(address: str, timeout: float = 5.0) -> None:
    """Ray installed, and ``address`` 'local' or a HOST:PORT that accepts a connection
    within ``timeout`` s (Ray itself would retry an unreachable address for minutes)."""
    ray_module()
    if address in ("local", "auto"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not (sep and host and port.isdigit()):
        raise ExplorerError(f"bad Ray address {address!r}: give the head node's HOST:PORT (e.g. 10.0.0.5:6379) or 'local'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExplorerError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


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


__all__ = ["check_address", "connect_cluster", "ray_module", "worker_share"]
