"""Pictures of the space, shared by the front ends: ``explorer map`` (chosen token vectors
in 2-D) and ``explorer map-path`` (one position's hidden state through the layers, among
token landmarks), with their terminal scatters and PNG figures.

Inputs are checked before any model loads; the catalog is read in one session per step,
never during a forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.query.analogy import word_vector
from explorer.services.lens import ModelRunner, check_position, require_lens
from explorer.services.query import (
    QueryOptions,
    SetChoice,
    WordRules,
    analogy,
    check_where,
)
from explorer.viz import project as P
from explorer.viz import select as S
from explorer.viz.path import (
    auto_landmarks,
    check_fit,
    check_landmark_count,
    path_states,
    place_path,
    resolve_landmarks,
)
from explorer.viz.scatter import save_scatter_png, terminal_scatter

__all__ = ["DEFAULT_LIMIT", "MapOptions", "MapPoints", "MapProjection", "PathOptions", "check_map", "check_path",
           "draw_map", "map_path", "path_notes", "save_map_png", "save_path_png", "terminal_scatter"]

DEFAULT_LIMIT = P.DEFAULT_LIMIT


@dataclass(frozen=True)
class MapPoints:
    """Which points: named words (always shown), an expression's top ``k`` answers and its
    input words, every token matching a ``where`` predicate; beyond ``limit``, a stated sample."""

    words: tuple[str, ...] = ()
    expr: str | None = None
    k: int = 30
    where: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class MapProjection:
    """How to draw them: pca, umap or custom axes (``x``/``y`` expressions; ``unit``:
    unit-normalise the points first). None: pca, or axes when ``x``/``y`` are given."""

    method: str | None = None
    x: str | None = None
    y: str | None = None
    unit: bool = False


@dataclass(frozen=True)
class MapOptions:
    set: SetChoice = field(default_factory=SetChoice)
    points: MapPoints = field(default_factory=MapPoints)
    projection: MapProjection = field(default_factory=MapProjection)
    words: WordRules = field(default_factory=WordRules)
    seed: int = 0  # for sampling and UMAP


def check_map(options: MapOptions) -> str:
    """The checks that need no store: the --where predicate, then the method (returned)."""
    check_where(options.points.where)
    p = options.projection
    return S.choose_method(p.method, p.x, p.y)


def draw_map(engine, options: MapOptions, *, report: Report | None = None, progress: Progress | None = None):
    """Select points from one vector set and project them (a Projection, see :mod:`explorer.viz.project`)."""
    method, pts, rules = check_map(options), options.points, options.words
    with engine.catalog.session():
        s = engine.open_set(options.set.model, options.set.vectors, report=report, progress=progress)

        def resolve(word: str):
            return engine.resolve(s, word, rules.variant, rules.multi)

        entries: list[S.Entry] = []
        pr = options.projection
        axes = S.axes_entries(s.vectors, pr.x, pr.y, resolve, entries) if method == "axes" else None
        entries += [S.Entry(resolve(w).token_ids, "word", w, True) for w in pts.words]
        if pts.expr:
            asked = QueryOptions(set=SetChoice(model=s.model.name, vectors=s.row.name), k=pts.k, words=rules)
            entries += S.answer_entries(analogy(engine, pts.expr, asked))
        if pts.where:
            ids = np.flatnonzero(engine.allowed_mask(s, None, pts.where))
            entries.extend(S.Entry((int(i),), "where", None, False) for i in ids)
        entries = S.dedupe(entries)
        if not entries:
            raise ExplorerError("nothing to draw: give WORDS, --expr EXPR or --where SQL (or --x/--y axes)")
        smp = P.sample(len(entries), pts.limit, options.seed, keep=[i for i, e in enumerate(entries) if e.pinned])
        shown = [entries[i] for i in smp.indices]
        labels = s.tokens.labels([e.token_ids[0] for e in shown if e.label is None])
        matrix = S.entry_rows(s.vectors, shown)
    return S.project(method, s.label, shown, labels, matrix, smp, axes, pr.unit, options.seed)


# -- one position's path ------------------------------------------------------------------------


@dataclass(frozen=True)
class PathOptions:
    """A prompt's position (negative counts from the end), its landmark words (none: the
    lens's top-1 tokens of the later layers) and the PCA's fit: ``all`` or ``landmarks``."""

    text: str
    position: int = -1
    landmarks: tuple[str, ...] = ()
    fit: str = "all"
    model: str | None = None
    words: WordRules = field(default_factory=WordRules)


def check_path(engine, options: PathOptions, *, report: Report | None = None, progress: Progress | None = None):
    """The model's ModelRow once every input is checked against the catalog and the
    tokenizer, before any weights load: a model the lens reads, the fit, the landmark
    words (3 or more for ``fit="landmarks"``), the position."""
    m = engine.model(options.model, report=report, progress=progress)
    require_lens(m)
    check_fit(options.fit)
    if options.landmarks:
        with engine.catalog.session():
            marks = _landmarks(engine, m.name, options)
        check_landmark_count(marks, options.fit)
    check_position(m, options.text, options.position)
    return m


def map_path(engine, options: PathOptions, *, report: Report | None = None, progress: Progress | None = None):
    """Check, load the model, run the prompt and place its path among the landmarks (a HiddenPath)."""
    m = check_path(engine, options, report=report, progress=progress)
    if report:
        report(f"loading {m.name}'s weights")
    ps = path_states(ModelRunner(m), options.text, options.position)  # the forward pass, no session
    with engine.catalog.session():
        out = engine.open_set(m.name, "output")
        labels = out.tokens.labels(list(ps.top_ids))
        marks = _landmarks(engine, m.name, options) if options.landmarks else auto_landmarks(ps.top_ids, labels)
        rows = np.stack([word_vector(out.vectors, r) for r in marks])
    return place_path(ps, marks, rows, labels, options.fit, auto=not options.landmarks)


def _landmarks(engine, model: str, options: PathOptions) -> list:
    """The landmark words resolved against the model's output set, repeats dropped."""
    out = engine.open_set(model, "output")
    rules = options.words
    return resolve_landmarks(options.landmarks, lambda w: engine.resolve(out, w, rules.variant, rules.multi))


def path_notes(hp) -> tuple[str, ...]:
    """What the picture of a HiddenPath keeps and loses, then the landmarks' notices."""
    fitted = "path and landmarks" if hp.fit == "all" else "the landmarks"
    pca = (f"PCA of unit(final_norm(h_L)) and unit landmark rows, fitted on {fitted}: "
           f"{100 * sum(hp.explained_ratio):.1f}% of their variance and {100 * hp.path_in_plane:.1f}% of the path's in this plane")
    return (pca, *hp.notes)


# -- pictures -------------------------------------------------------------------------------------


def save_map_png(proj, path: Path, labels: int):
    """A labelled figure of a map (at most ``labels`` labels, named words first); its PngInfo."""
    return save_scatter_png(proj.points, path, title=f"{proj.vector_set}: {proj.method}", axis_titles=proj.axis_titles,
                    max_labels=labels, zero_lines=proj.method == "axes", notes=proj.notes)


def save_path_png(hp, path: Path):
    """A labelled figure of a hidden-state path among its landmarks; its PngInfo."""
    return save_scatter_png(hp.points(), path, title=f"{hp.model}: position {hp.position} ({hp.token!r})",
                    axis_titles=hp.axis_titles, max_labels=200, zero_lines=False, notes=path_notes(hp))
