"""The points of ``explorer map``: chosen from a store, then projected to 2-D.

Points come from any mix of: named words (resolved as ``explorer query`` does), the
neighbours of an expression (its top ``k`` answers and its input words), a ``--where``
predicate on the tokens table, and, for custom axes, the words that define the axes.
Named words and axis words are always shown; the rest may be sampled (stated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from explorer.errors import ExplorerError
from explorer.query.analogy import word_vector
from explorer.query.parse import parse
from explorer.viz import project as P


@dataclass(frozen=True)
class Entry:
    token_ids: tuple[int, ...]
    group: str  # word | expr | where | axis
    label: str | None  # None: looked up after sampling
    pinned: bool


def display(text: str) -> str:
    """A token's text as a picture label: stripped, or its repr when only whitespace."""
    return text.strip() or repr(text)


def choose_method(method: str | None, x: str | None, y: str | None) -> str:
    """``--x/--y`` imply ``axes``; axes need both; PCA otherwise."""
    m = (method or ("axes" if (x or y) else "pca")).lower()
    if m not in P.METHODS:
        raise ExplorerError(f"unknown method {method!r}; choose one of {', '.join(P.METHODS)}")
    if m == "axes" and not (x and y):
        raise ExplorerError("--method axes needs both --x and --y, e.g. --x \"woman - man\" --y \"queen - king\"")
    if m != "axes" and (x or y):
        raise ExplorerError(f"--x and --y define custom axes; they do not combine with --method {m}")
    return m


def build_map(
    engine,
    *,
    words: Sequence[str] = (),
    expr: str | None = None,
    k: int = 30,
    where: str | None = None,
    method: str | None = None,
    x: str | None = None,
    y: str | None = None,
    unit_points: bool = False,
    model: str | None = None,
    vectors: str = "input",
    limit: int = P.DEFAULT_LIMIT,
    seed: int = 0,
    variant: str = "auto",
    multi: str = "refuse",
    report: Callable[[str], None] | None = None,
    progress=None,
) -> P.Projection:
    """Select points from one vector set and project them (see :mod:`explorer.viz.project`)."""
    m = choose_method(method, x, y)
    s = engine.open_set(model, vectors, report=report, progress=progress)
    try:
        entries: list[Entry] = []
        axes = _axes(engine, s, x, y, variant, multi, entries) if m == "axes" else None
        for w in words:
            r = engine.resolve(s, w, variant, multi)
            entries.append(Entry(r.token_ids, "word", w, True))
        if expr:
            _expression(engine, s, expr, k, variant, multi, entries)
        if where:
            ids = np.flatnonzero(engine.allowed_mask(s, None, where))
            entries.extend(Entry((int(i),), "where", None, False) for i in ids)
        entries = _dedupe(entries)
        if not entries:
            raise ExplorerError("nothing to draw: give WORDS, --expr EXPR or --where SQL (or --x/--y axes)")
        smp = P.sample(len(entries), limit, seed, keep=[i for i, e in enumerate(entries) if e.pinned])
        shown = [entries[i] for i in smp.indices]
        labels = s.tokens.labels([e.token_ids[0] for e in shown if e.label is None])
        matrix = _rows(s.vectors, shown)
    finally:
        engine.close()
    return _project(m, s.label, shown, labels, matrix, smp, axes, unit_points, seed)


def _axes(engine, s, x: str, y: str, variant: str, multi: str, entries: list[Entry]):
    """Raw axis directions (weighted sums of word vectors); their words become pinned points."""
    dirs = []
    for text in (x, y):
        e = parse(text)
        vec = np.zeros(s.vectors.dim, dtype=np.float64)
        for t in e.terms:
            r = engine.resolve(s, t.word, variant, multi)
            vec += t.weight * word_vector(s.vectors, r).astype(np.float64)
            entries.append(Entry(r.token_ids, "axis", t.word, True))
        dirs.append((e.render(), vec))
    return dirs


def _expression(engine, s, expr: str, k: int, variant: str, multi: str, entries: list[Entry]) -> None:
    res = engine.query(expr, model=s.model.name, vectors=s.row.name, k=k, variant=variant, multi=multi)
    for i in res.inputs:
        entries.append(Entry(i.token_ids, "word", i.word, True))
    for h in res.results:
        entries.append(Entry((h.token_id,), "expr", display(h.token), False))


def _dedupe(entries: list[Entry]) -> list[Entry]:
    """One point per token (the first mention wins, but pinned if any mention is)."""
    first: dict[tuple[int, ...], int] = {}
    out: list[Entry] = []
    for e in entries:
        j = first.get(e.token_ids)
        if j is None:
            first[e.token_ids] = len(out)
            out.append(e)
        elif e.pinned and not out[j].pinned:
            out[j] = Entry(out[j].token_ids, out[j].group, out[j].label or e.label, True)
    return out


def _rows(vs, entries: Sequence[Entry]) -> np.ndarray:
    """float64 matrix, one row per entry (the mean of its tokens' rows)."""
    single = [e.token_ids[0] for e in entries if len(e.token_ids) == 1]
    out = np.empty((len(entries), vs.dim), dtype=np.float64)
    if len(single) == len(entries):
        out[:] = vs.rows(single)
        return out
    for n, e in enumerate(entries):
        out[n] = vs.rows(list(e.token_ids)).mean(axis=0)
    return out


def _project(method, label, shown, labels, matrix, smp, axes, unit_points, seed) -> P.Projection:
    explained, info, notes = None, None, [n for n in (smp.note(),) if n]
    if method == "pca":
        fit = P.pca(matrix, 2)
        coords, explained, titles = fit.coords, fit.explained_ratio, P.pca_titles(fit.explained_ratio)
    elif method == "axes":
        (xn, xd), (yn, yd) = axes
        coords = P.axes_coords(matrix, xd, yd, unit_points)
        info = P.AxesInfo(xn, yn, float(np.linalg.norm(xd)), float(np.linalg.norm(yd)), P.axes_cosine(xd, yd), unit_points)
        unit = "cos(v, {})" if unit_points else "projection on unit({})"
        titles = (unit.format(xn), unit.format(yn))
        notes.append(f"cosine between the axes: {info.cosine:.4f} (1 = parallel offsets, 0 = orthogonal)")
    else:
        coords, titles = P.umap_coords(matrix, seed), ("UMAP 1", "UMAP 2")
        notes.append("UMAP keeps neighbourhoods, not distances or directions: read clusters, not axes")
    points = tuple(
        P.Point(e.label if e.label is not None else display(labels.get(e.token_ids[0], str(e.token_ids[0]))),
                e.token_ids[0] if len(e.token_ids) == 1 else None, float(cx), float(cy), e.group)
        for e, (cx, cy) in zip(shown, coords)
    )
    return P.Projection(method, label, points, titles, smp, explained, info, tuple(notes))
