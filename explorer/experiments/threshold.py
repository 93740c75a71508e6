"""Finding where a falling curve crosses a level, and fitting a line through such points.

Used by the counting experiment: test accuracy falls as the vocabulary size m grows, and
``m_thr`` is where it crosses 0.8. Rather than train at every m of a fixed grid, a search
brackets the crossing and bisects it (:func:`next_probe`), one probe at a time per curve.

* **The crossing** (:func:`crossing`): over the probes sorted by x, the first one below the
  level and the one before it; ``x_thr`` is linearly interpolated between the two. No probe
  below: censored "above"; already the first: censored "below". With noise the curve need
  not be monotone; the first fall below the level is what counts, and the search refines it.
* **The search** (:func:`next_probe`): start at ``start``; while every probe is at or above
  the level, step up by the factor ``bracket`` (at least +1) until ``hi``; while the
  smallest probe is below it, step down by ``bracket`` until ``lo``; then bisect between the
  last probe above and the first below until they are at most ``max(1, tolerance * x)``
  apart. Integers only: probes are vocabulary sizes.
* **The fit** (:func:`linear_fit`): least squares ``y = slope * x + intercept``, r^2, and a
  95 % confidence interval for the slope from Student's t with n - 2 degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Student's t, two-sided 95 % (the 0.975 quantile), for 1..30 degrees of freedom
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


@dataclass(frozen=True)
class Bounds:
    """Where and how a search probes: integers in ``lo..hi`` from ``start``."""

    lo: int
    hi: int
    start: int
    bracket: float = 1.5  # step factor while bracketing
    tolerance: float = 0.1  # stop once the bracket is at most max(1, tolerance * x) wide


def crossing(curve: Sequence[tuple[float, float]], level: float) -> tuple[float | None, str | None]:
    """``(x_thr, censored)`` for ``[(x, y), ...]``: where y first falls below ``level``."""
    curve = sorted(curve)
    for j, (x, y) in enumerate(curve):
        if y < level:
            if j == 0:
                return None, "below"
            x0, y0 = curve[j - 1]
            return x0 + (y0 - level) * (x - x0) / (y0 - y), None
    return None, "above"


def next_probe(curve: Sequence[tuple[int, float]], level: float, bounds: Bounds) -> int | None:
    """The next x to probe on this curve, or None when the crossing is found (or censored)."""
    if not curve:
        return min(bounds.hi, max(bounds.lo, bounds.start))
    curve = sorted(curve)
    first = next((j for j, (_, y) in enumerate(curve) if y < level), None)
    if first is None:  # all at or above the level: bracket upwards
        top = curve[-1][0]
        return None if top >= bounds.hi else min(bounds.hi, max(top + 1, math.ceil(top * bounds.bracket)))
    if first == 0:  # already the smallest probe is below: bracket downwards
        bottom = curve[0][0]
        return None if bottom <= bounds.lo else max(bounds.lo, min(bottom - 1, math.floor(bottom / bounds.bracket)))
    lo, hi = curve[first - 1][0], curve[first][0]
    if hi - lo <= max(1.0, bounds.tolerance * lo):
        return None
    return (lo + hi) // 2


def simulate(passes: Callable[[int], bool], level: float, bounds: Bounds, limit: int = 100) -> list[int]:
    """The probes the search makes on a curve that is above the level exactly where ``passes``
    (for estimates: how many runs a search will take if the threshold is where we expect)."""
    curve: list[tuple[int, float]] = []
    while len(curve) < limit:
        x = next_probe(curve, level, bounds)
        if x is None:
            break
        curve.append((x, 1.0 if passes(x) else 0.0))
    return [x for x, _ in curve]


def t975(dof: int) -> float:
    """The 0.975 quantile of Student's t (a table to 30, then a series in 1/dof)."""
    if dof <= 30:
        return T975[dof - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float | list[float] | int | None]:
    """Least-squares ``y ~ slope*x + intercept``: r^2, n and ``slope_ci95`` (None where the
    data cannot give them: fewer than 2 distinct x; the interval needs 3 points)."""
    n = len(xs)
    out: dict = {"slope": None, "intercept": None, "r2": None, "slope_ci95": None, "n": n}
    if len(set(xs)) < 2:
        return out
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - slope * x - intercept) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    out.update(slope=slope, intercept=intercept, r2=r2)
    if n > 2:
        half = t975(n - 2) * math.sqrt(ss_res / (n - 2) / sxx)
        out["slope_ci95"] = [slope - half, slope + half]
    return out


__all__ = ["Bounds", "crossing", "linear_fit", "next_probe", "simulate", "t975"]
