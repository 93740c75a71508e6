"""The public event stream of a sweep: what a sweep reports while it runs.

A sweep (:class:`explorer.experiments.runner.Sweep`, started through
:mod:`explorer.services.sweeps`) hands its ``on_event`` callback these events, in this
order::

    kind        class          when
    plan        PlanStated     once, before anything is recorded
    sweep       SweepOpened    once: the sweep's row exists (a new sweep, or the resumed one)
    per point:
      start     RunStarted     its row in ``runs`` exists
      metric    RunMetric      a value at a step (it lands in ``metrics``)
      progress  RunProgress    step of total, with values such as the loss
      log       RunLog         a line of text
      run       RunFinished    the point ended: finished, failed or cancelled
    done        SweepDone      once, at the end (also after a cancel)

Points that run in parallel interleave their events. Every event is a frozen dataclass
with a ``kind`` and ``to_dict()`` (``{"kind": ..., field: value, ...}``, fields in the
order above); :func:`from_dict` reverses it. ``explorer experiment run NAME --jsonl``
prints the same dicts, one JSON object per line (:func:`to_json_line`; a
``RunFinished``'s traceback stays out of it), and :func:`from_json_line` reads them back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from explorer.jsonsafe import clean


@dataclass(frozen=True)
class _Event:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}


@dataclass(frozen=True)
class PlanStated(_Event):
    """The sweep about to start: its number of points and rough duration (None: no cost model)."""

    kind: ClassVar[str] = "plan"
    points: int
    estimated_seconds: float | None
    text: str  # "counting: 12 points, estimated about 2 min (...)"


@dataclass(frozen=True)
class SweepOpened(_Event):
    kind: ClassVar[str] = "sweep"
    sweep_id: int
    total: int  # points in the sweep (a search: the points it expects to run in all, an estimate)
    skipped: int  # finished earlier (--resume)
    todo: int  # points this run will start (a search: its first points; it adds more as results come)
    search: bool = False  # the experiment searches: points are added as results come in


@dataclass(frozen=True)
class RunStarted(_Event):
    kind: ClassVar[str] = "start"
    run_id: int
    point: str  # the point's label, e.g. "d=8 m=4"


@dataclass(frozen=True)
class RunMetric(_Event):
    kind: ClassVar[str] = "metric"
    run_id: int
    step: int
    name: str
    value: float


@dataclass(frozen=True)
class RunProgress(_Event):
    kind: ClassVar[str] = "progress"
    run_id: int
    step: int
    total: int
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunLog(_Event):
    kind: ClassVar[str] = "log"
    run_id: int
    text: str


@dataclass(frozen=True)
class RunFinished(_Event):
    kind: ClassVar[str] = "run"
    run_id: int
    point: str
    status: str  # finished, failed or cancelled
    summary: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None  # a bug in the experiment (not in --jsonl output)


@dataclass(frozen=True)
class SweepDone(_Event):
    """The sweep's result: ``runs`` are this run's points (dicts: run_id, point, status,
    summary, error); ``summary`` the experiment's sweep-level result, ``text`` its lines."""

    kind: ClassVar[str] = "done"
    sweep_id: int
    experiment: str
    status: str  # finished, failed or cancelled
    skipped: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    text: str | None = None


Event = Union[PlanStated, SweepOpened, RunStarted, RunMetric, RunProgress, RunLog, RunFinished, SweepDone]
KINDS: dict[str, type] = {c.kind: c for c in (PlanStated, SweepOpened, RunStarted, RunMetric, RunProgress, RunLog,
                                              RunFinished, SweepDone)}


def from_dict(data: dict[str, Any]) -> Event:
    """The event a ``to_dict()`` came from; ValueError for an unknown kind or missing fields."""
    cls = KINDS.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown sweep event kind {data.get('kind')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"sweep event {cls.kind!r}: {exc}") from None


def to_json_line(event: Event) -> str:
    """One line of ``--jsonl`` output (no newline)."""
    data = {k: v for k, v in event.to_dict().items() if k != "traceback"}
    return json.dumps(clean(data), ensure_ascii=False)


def from_json_line(line: str) -> Event | None:
    """The event on a line of ``--jsonl`` output; None for a line that is not one."""
    try:
        data = json.loads(line)
        return from_dict(data) if isinstance(data, dict) else None
    except ValueError:  # json.JSONDecodeError is a ValueError
        return None


__all__ = ["Event", "PlanStated", "RunFinished", "RunLog", "RunMetric", "RunProgress", "RunStarted", "SweepDone",
           "SweepOpened", "from_dict", "from_json_line", "to_json_line"]
