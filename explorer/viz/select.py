"""The points of ``explorer map`` and their 2-D projection (the service that reads them
from a store is :mod:`explorer.services.maps`).

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
from explorer.query.vocab import Resolved
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


def axes_entries(vectors, x: str, y: str, resolve: Callable[[str], Resolved], entries: list[Entry]):
    """Raw axis directions (weighted sums of word vectors of ``vectors``), each as (rendered
    expression, direction); their words become pinned points. ``resolve(word)``: its tokens."""
    dirs = []
    for text in (x, y):
        e = parse(text)
        vec = np.zeros(vectors.dim, dtype=np.float64)
        for t in e.terms:
            r = resolve(t.word)
            vec += t.weight * word_vector(vectors, r).astype(np.float64)
            entries.append(Entry(r.token_ids, "axis", t.word, True))
        dirs.append((e.render(), vec))
    return dirs


def answer_entries(res) -> list[Entry]:
    """An expression's input words (pinned) and its answers, from its QueryResult."""
    return ([Entry(i.token_ids, "word", i.word, True) for i in res.inputs]
            + [Entry((h.token_id,), "expr", display(h.token), False) for h in res.results])


def dedupe(entries: list[Entry]) -> list[Entry]:
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


def entry_rows(vs, entries: Sequence[Entry]) -> np.ndarray:
    """float64 matrix, one row per entry (the mean of its tokens' rows)."""
    single = [e.token_ids[0] for e in entries if len(e.token_ids) == 1]
    out = np.empty((len(entries), vs.dim), dtype=np.float64)
    if len(single) == len(entries):
        out[:] = vs.rows(single)
        return out
    for n, e in enumerate(entries):
        out[n] = vs.rows(list(e.token_ids)).mean(axis=0)
    return out


def project(method: str, label: str, shown: Sequence[Entry], labels: dict[int, str], matrix: np.ndarray, smp: P.Sample,
            axes, unit_points: bool, seed: int) -> P.Projection:
    """The chosen entries' rows in 2-D by ``method`` (see :mod:`explorer.viz.project`), labelled."""
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
        P.ScatterPoint(e.label if e.label is not None else display(labels.get(e.token_ids[0], str(e.token_ids[0]))),
                e.token_ids[0] if len(e.token_ids) == 1 else None, float(cx), float(cy), e.group)
        for e, (cx, cy) in zip(shown, coords)
    )
    return P.Projection(method, label, points, titles, smp, explained, info, tuple(notes))
