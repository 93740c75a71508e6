"""One point of a sweep, run wherever an executor puts it: this process, a worker process
or a Ray task. It never touches the catalog: what it produces comes back as an
:class:`Outcome` for the sweep's driver to store, and its events go to ``emit``.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from explorer.errors import ExplorerError
from explorer.experiments import base, registry
from explorer.experiments.events import Event

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class PointTask:
    """A point whose run row exists: what an executor needs to run it (picklable)."""

    experiment: str  # a registry name, or module:ATTR
    config: dict[str, Any]  # the point's full configuration (base.config_dict)
    run_id: int
    seed: int
    label: str  # e.g. "d=8 m=4"


@dataclass(frozen=True)
class Outcome:
    """How a point ended: ``status`` finished, failed or cancelled."""

    status: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None  # a bug in the experiment
    seconds: float | None = None
    vectors: list[tuple[str, list[str], Any, str]] = field(default_factory=list)  # (name, words, matrix, note)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # extra rows by table


def _device(threads: int) -> str:
    try:
        import torch

        torch.set_num_threads(max(1, threads))
        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


def execute(task: PointTask, emit: Emit, cancelled: Callable[[], bool], threads: int = 1,
            root: str | Path | None = None) -> Outcome:
    """Run one point in this process (``threads`` torch threads; ``root`` the data root, read
    only, for experiments that read stored vectors) and return what the driver stores."""
    exp = registry.get(task.experiment)
    cfg = base.apply(exp.Config(), task.config)
    ctx = base.RunContext(task.run_id, task.seed, _device(threads), emit, cancelled, threads,
                          Path(root) if root else None)
    started = time.perf_counter()
    try:
        out = exp.run(cfg, ctx)
    except base.Cancelled:
        return Outcome("cancelled")
    except ExplorerError as exc:
        return Outcome("failed", error=str(exc))
    except Exception as exc:  # a bug in an experiment: keep the sweep going, keep the traceback
        return Outcome("failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    return Outcome("finished", out.summary, seconds=time.perf_counter() - started,
                   vectors=[(v.name, v.words, v.matrix, v.note) for v in out.vectors], rows=out.rows)


__all__ = ["Emit", "Outcome", "PointTask", "execute"]
