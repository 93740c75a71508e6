"""What the bench scripts share: timing contenders against each other in the same process."""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple


class Best(NamedTuple):
    wall: float  # best wall-clock seconds
    cpu: float  # best process CPU seconds (on a shared machine, the work done)
    result: Any  # what the last call returned


def best_of(fns: dict[str, Callable[[], Any]], repeat: int, warmup: int = 0,
            sync: Callable[[], None] | None = None) -> dict[str, Best]:
    """``{name: Best}`` over ``repeat`` rounds after ``warmup`` untimed ones. Contenders run
    round-robin, so drift in machine speed hits every one alike; ``sync`` (e.g. CUDA's)
    is called before each clock is read."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = {name: Best(float("inf"), float("inf"), None) for name in fns}
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            out = fn()
            if sync is not None:
                sync()
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            best[name] = Best(min(best[name].wall, wall), min(best[name].cpu, cpu), out)
    return best
