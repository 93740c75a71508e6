"""What is checked before a sweep starts: ranges, settings that would have no effect,
and a rough estimate of the time it will take.

An experiment may carry ``rules``, a :class:`Rules`:

* ``checks``: setting -> a check of its value (:func:`at_least`, :func:`between`,
  :func:`one_of`, :func:`each`, ...), applied to the sweep's settings;
* ``validate(config)``: checks across settings (``d`` divisible by ``heads``) and of the
  files a run reads, applied to every point's settings;
* ``unused(config)``: settings that have no effect with these settings, and why (a scalar
  that a grid sets at every point); setting one of them with ``--set`` is an error;
* ``estimate(config)``: rough seconds for one point, from a cost model (no torch);
* ``gpu_estimate(config)``: the same on one GPU, where the experiment has a model of it.

Every failure is one :class:`ExplorerError` line naming the setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import ExplorerError

Check = Callable[[Any], "str | None"]  # None: fine; else what is wrong ("must be at least 1")
LONG_SWEEP_S = 600.0  # a sweep estimated longer than this needs --yes (or an explicit --preset)
DAY_LONG_SWEEP_S = 4 * 3600.0  # ... and longer than this needs --yes even with a preset (paper grids on a CPU)


def _none(config: Any) -> dict[str, str]:
    return {}


def _fine(config: Any) -> None:
    return None


@dataclass(frozen=True)
class Rules:
    checks: dict[str, Check] = field(default_factory=dict)
    validate: Callable[[Any], None] = _fine
    unused: Callable[[Any], dict[str, str]] = _none
    estimate: Callable[[Any], float] | None = None
    gpu_estimate: Callable[[Any], float] | None = None


# -- checks of one value -----------------------------------------------------------------


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(lo: float, hi: float | None = None) -> Check:
    """A finite number >= lo (and <= hi)."""
    def check(v: Any) -> str | None:
        if not _number(v):
            return "must be a finite number"
        if v < lo or (hi is not None and v > hi):
            return f"must be at least {lo}" if hi is None else f"must be between {lo} and {hi}"
        return None
    return check


def above(lo: float, hi: float | None = None) -> Check:
    """A finite number > lo (and <= hi)."""
    def check(v: Any) -> str | None:
        if not _number(v):
            return "must be a finite number"
        if v <= lo:
            return f"must be greater than {lo}"
        if hi is not None and v > hi:
            return f"must be at most {hi}"
        return None
    return check


def between(lo: float, hi: float) -> Check:
    return at_least(lo, hi)


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"
    return check


def each(inner: Check) -> Check:
    """Every element of a tuple passes ``inner``."""
    def check(v: Any) -> str | None:
        for x in v:
            problem = inner(x)
            if problem:
                return f"{show(x)} {problem}"
        return None
    return check


def show(value: Any) -> str:
    """A value as it would be written after ``--set key=``."""
    if isinstance(value, (tuple, list)):
        return ",".join(show(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def problem(name: str, value: Any, what: str) -> ExplorerError:
    return ExplorerError(f"setting {name}={show(value)}: {what}")


# -- a whole plan ------------------------------------------------------------------------


def _rules(exp: Any) -> Rules:
    return getattr(exp, "rules", None) or Rules()


def check_ranges(exp: Any, config: Any) -> None:
    """Every setting of ``config`` that has a check passes it."""
    for name, check in _rules(exp).checks.items():
        value = getattr(config, name)
        what = check(value)
        if what:
            raise problem(name, value, what)


def check_plan(exp: Any, config: Any, points: Sequence[Any], explicit: Sequence[str]) -> None:
    """``--set`` settings without effect, then every point's own checks."""
    rules = _rules(exp)
    unused = rules.unused(config)
    for name in explicit:
        if name in unused:
            raise problem(name, getattr(config, name), f"has no effect: {unused[name]}")
    for point in points:
        try:
            rules.validate(point.config)
        except ExplorerError as exc:
            if not point.overrides:
                raise
            raise ExplorerError(f"{exc} (at sweep point {point.label})") from None


def estimate(exp: Any, points: Sequence[Any], workers: int = 1) -> float | None:
    """Rough seconds for ``points`` (None when the experiment has no cost model)."""
    rules = _rules(exp)
    if rules.estimate is None or not points:
        return None
    total = sum(rules.estimate(p.config) for p in points)
    return total / max(1, min(workers, len(points), os.cpu_count() or 1))


def gpu_estimate(exp: Any, points: Sequence[Any]) -> float | None:
    """Rough seconds for ``points`` one after another on one GPU (None without a GPU cost model)."""
    rules = _rules(exp)
    if rules.gpu_estimate is None or not points:
        return None
    return sum(rules.gpu_estimate(p.config) for p in points)


def duration(seconds: float) -> str:
    """``about 40 s``, ``about 12 min``, ``about 3.5 h``, ``about 20 days``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"about {seconds / 3600:.1f} h"
    return f"about {round(seconds / 86400)} days"
