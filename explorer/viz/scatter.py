"""Draw projected points: a labelled PNG (matplotlib, Agg) and a terminal scatter.

Labels in scripts DejaVu Sans cannot draw (often CJK) use installed fonts that have the
glyphs (:mod:`explorer.viz.fonts`; without a CJK font, one line on stderr says so).
Matplotlib's per-glyph "missing from font" warnings are suppressed and replaced by one
count in the returned :class:`PngInfo`.
"""

from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from explorer.errors import ExplorerError
from explorer.viz.fonts import choose
from explorer.viz.project import ScatterPoint

PINNED = ("landmark", "word", "axis", "path")  # groups labelled first
_STYLE = {  # group -> (colour, marker, size, alpha)
    "where": ("tab:gray", "o", 8, 0.5),
    "expr": ("tab:blue", "o", 18, 0.8),
    "word": ("tab:red", "o", 30, 1.0),
    "axis": ("tab:purple", "D", 30, 1.0),
    "landmark": ("tab:orange", "*", 140, 1.0),
    "path": ("tab:green", "o", 22, 1.0),
}
_TERM_MARK = {"word": "●", "axis": "◆", "landmark": "★", "path": "○", "expr": "•", "where": "·"}


@dataclass(frozen=True)
class PngInfo:
    path: str
    bytes: int
    labelled: int
    points: int
    fonts: tuple[str, ...]
    undrawable_labels: int  # labels with characters no available font has (drawn as boxes)

    def to_dict(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, "labelled": self.labelled, "points": self.points,
                "fonts": list(self.fonts), "undrawable_labels": self.undrawable_labels}

    def describe(self) -> str:
        out = f"figure written to {self.path} ({self.bytes} bytes; {self.labelled} of {self.points} points labelled)"
        if self.undrawable_labels:
            out += (f"; {self.undrawable_labels} labels hold characters no installed font can draw (boxes): "
                    "install a CJK font such as Noto Sans CJK for them")
        return out


def label_order(points: Sequence[ScatterPoint], max_labels: int) -> list[int]:
    """Indices of the points to label: pinned groups first, then the rest in order."""
    def group(name: str) -> list[int]:
        return [i for i, p in enumerate(points) if p.group == name]

    first = group("landmark") + group("word") + group("axis")
    path, budget = group("path"), max(max_labels - len(first), 0)
    if len(path) > budget:  # first, last and evenly spaced layers
        picks = [round(j * (len(path) - 1) / (budget - 1)) for j in range(budget)] if budget > 1 else [0][:budget]
        path = [path[j] for j in dict.fromkeys(picks)]
    rest = [i for i, p in enumerate(points) if p.group not in PINNED]
    return (first + path + rest)[:max_labels]


def save_scatter_png(points: Sequence[ScatterPoint], path: Path, *, title: str, axis_titles: tuple[str, str],
             max_labels: int = 60, zero_lines: bool = False, notes: Sequence[str] = ()) -> PngInfo:
    """Write a labelled scatter (path points joined in order, landmarks as stars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = label_order(points, max_labels)
    fonts = choose([title, *axis_titles, *notes, *(points[i].label for i in chosen)])
    with warnings.catch_warnings(), matplotlib.rc_context({"font.family": list(fonts.families)}):
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig, ax = plt.subplots(figsize=(9, 7))
        _draw(ax, points, chosen)
        if zero_lines:
            ax.axhline(0, color="0.8", lw=0.8, zorder=0)
            ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel(axis_titles[0])
        ax.set_ylabel(axis_titles[1])
        ax.set_title(title, fontsize=10)
        if notes:
            fig.text(0.01, 0.005, "\n".join(notes), fontsize=7, color="0.35", va="bottom")
        fig.tight_layout(rect=(0, 0.02 * min(len(notes), 4), 1, 1))
        path = Path(path)
        try:
            fig.savefig(path, dpi=120)
        except (OSError, ValueError) as exc:  # missing directory, unknown format
            raise ExplorerError(f"cannot write figure {path}: {getattr(exc, 'strerror', None) or exc}") from None
        finally:
            plt.close(fig)
    missing = sum(1 for i in chosen if not fonts.drawable(points[i].label))
    return PngInfo(str(path), path.stat().st_size, len(chosen), len(points), fonts.families, missing)


def _draw(ax, points: Sequence[ScatterPoint], chosen: list[int]) -> None:
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(p.group, []).append(i)
    for group in ("where", "expr", "path", "word", "axis", "landmark"):
        idx = groups.get(group, [])
        if not idx:
            continue
        colour, marker, size, alpha = _STYLE[group]
        xs, ys = [points[i].x for i in idx], [points[i].y for i in idx]
        if group == "path":
            ax.plot(xs, ys, color=colour, lw=1.2, alpha=0.7, zorder=2)
        ax.scatter(xs, ys, s=size, c=colour, marker=marker, alpha=alpha, label=group, zorder=3,
                   edgecolors="none" if marker != "*" else "black", linewidths=0.4)
    for i in chosen:
        p = points[i]
        ax.annotate(p.label, (p.x, p.y), xytext=(3, 3), textcoords="offset points", fontsize=8,
                    color="black" if p.group in PINNED else "0.3", zorder=4)
    if len(groups) > 1:
        ax.legend(loc="best", fontsize=8, markerscale=0.8)


# -- terminal -----------------------------------------------------------------------------


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def terminal_scatter(points: Sequence[ScatterPoint], *, axis_titles: tuple[str, str], width: int = 72, height: int = 22,
                     max_labels: int = 12, zero_lines: bool = False) -> str:
    """Points on a character grid, a few labelled, with the axis ranges written around it."""
    if not points:
        return "(no points)"
    xs, ys = [p.x for p in points], [p.y for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 1) / (x1 - x0) if x1 > x0 else 0.0
    sy = (height - 1) / (y1 - y0) if y1 > y0 else 0.0

    def cell(x: float, y: float) -> tuple[int, int]:
        return (height - 1 - round((y - y0) * sy), round((x - x0) * sx)) if sy or sx else (height // 2, width // 2)

    grid = [[" "] * width for _ in range(height)]
    if zero_lines:
        _zero_lines(grid, cell, x0, x1, y0, y1)
    counts: dict[tuple[int, int], int] = {}
    order = sorted(range(len(points)), key=lambda i: points[i].group in PINNED)  # pinned drawn last, on top
    for i in order:
        r, c = cell(points[i].x, points[i].y)
        counts[(r, c)] = counts.get((r, c), 0) + 1
        mark = _TERM_MARK.get(points[i].group, "·")
        grid[r][c] = "•" if mark == "·" and counts[(r, c)] > 1 else mark
    for i in label_order(points, max_labels):
        _put_label(grid, *cell(points[i].x, points[i].y), points[i].label)
    body = ["│" + "".join(row) + "│" for row in grid]
    return "\n".join([f"y: {axis_titles[1]}  from {y0:.4g} (bottom) to {y1:.4g} (top)", f"┌{'─' * width}┐", *body,
                      f"└{'─' * width}┘", f"x: {axis_titles[0]}  from {x0:.4g} (left) to {x1:.4g} (right)"])


def _zero_lines(grid, cell, x0, x1, y0, y1) -> None:
    if y0 <= 0 <= y1:
        r = cell(x0, 0.0)[0]
        grid[r] = ["┈"] * len(grid[r])
    if x0 <= 0 <= x1:
        c = cell(0.0, y0)[1]
        for row in grid:
            row[c] = "┊" if row[c] == " " else "┼"


def _put_label(grid: list[list[str]], r: int, c: int, label: str) -> None:
    """Write ``label`` right of (r, c), else left of it, only over blank cells; wide
    characters take two cells (the second holds '' so the row keeps its width)."""
    cells: list[str] = []
    for ch in label[:16]:
        cat = unicodedata.category(ch)
        if cat in ("Mn", "Me", "Cf"):  # zero-width: would shift the row
            continue
        ch = "?" if cat.startswith("C") else ch
        cells += [ch, ""] if _width(ch) == 2 else [ch]
    width = len(grid[r])
    for start in (c + 1, c - len(cells)):
        span = range(start, start + len(cells))
        if start >= 0 and start + len(cells) <= width and all(grid[r][k] in (" ", "┈") for k in span):
            for k, ch in zip(span, cells):
                grid[r][k] = ch
            return
