"""Hidden states: export a corpus's states, open a layer, nearest stored states to a
state of a prompt, compressed state indexes. Shared by the CLI and the TUI."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.query.anisotropy import CenteredRows
from explorer.query.states import StateHit, StateNeighbours, token_means
from explorer.services.engine import Engine, row_mask
from explorer.store.states import StateStore
from explorer.store import sets
from explorer.store.catalog import ModelRow
from explorer.store.centering import LayerCentre, layer_centre
from explorer.store.predicate import check_where
from explorer.store.vectorset import VectorSet

__all__ = ["StateNeighbours", "Runners", "build_state_indexes", "export_states", "layer_token_means",
           "neighbours_of_text", "open_layer", "state_index_path", "state_neighbours", "states_mask", "store_layer_centre"]


def export_states(spec: str | None, root: Path, *, corpus: Path | None = None, prompts: Sequence[str] = (),
                  name: str | None = None, dtype: str = "float32", batch_size: int = 8, max_tokens: int = 128,
                  workers: int = 1, force: bool = False, report: Report = lambda s: None,
                  progress: Progress | None = None, ray: str | None = None):
    """``explorer export-states``: the settings are checked, the documents read and the Ray
    cluster (``ray``: an address or 'local') reached before the model is looked up (or
    exported on first use), then every layer's states are stored."""
    from explorer.models.states import StatesJob, check_dtype, corpus_name, export_corpus, read_corpus, sample_corpus_path

    check_dtype(dtype)
    if corpus is None and not prompts:
        corpus = sample_corpus_path()
    docs = read_corpus(corpus) if corpus is not None else [(None, p) for p in prompts]
    job = StatesJob(tuple(docs), name or corpus_name(corpus, prompts), str(corpus or "prompts"), dtype, batch_size,
                    max_tokens, workers, force, ray)
    with ExitStack() as stack:
        if ray:
            from explorer.core.cluster import check_address, cluster_session

            check_address(ray)  # at once, before any stage line: a bad address is the only line printed
            report("starting a local Ray cluster" if ray == "local" else f"connecting to the Ray cluster at {ray}")
            stack.enter_context(cluster_session(ray))
        engine = Engine(root)
        m = engine.model(spec, report=report)
        return export_corpus(m, engine.root, engine.catalog, job, report=report, progress=progress)


def _corpus(engine: Engine, model: ModelRow, corpus: str | None):
    store = StateStore(engine.catalog)
    rows = [c for c in store.corpora(model.model_id) if c.status == "done"]
    if not rows:
        raise ExplorerError(f"no hidden states stored for {model.name}; run `explorer export-states {model.name}`")
    if corpus is None:
        return rows[-1]
    for c in rows:
        if c.name == corpus:
            return c
    names = ", ".join(c.name for c in rows)
    raise ExplorerError(f"no finished corpus {corpus!r} for {model.name} (have: {names})")


def open_layer(engine: Engine, model: str | None, corpus: str | None, layer: int, progress: Progress | None = None):
    """(model row, corpus row, VectorSet of that layer's states); the layer's files are
    checked first and, if cold, read into the page cache with ``progress``."""
    from explorer.store.states import check_layer, layer_file, layer_path, norms_file

    m = engine.model(model, auto_export=False)
    c = _corpus(engine, m, corpus)
    layer_path(engine.root, c, layer)  # range check
    check_layer(StateStore(engine.catalog), c, layer, progress)  # size and mtime as recorded (SHA-256 if the mtime changed)
    sets.warm(engine.root / c.path / layer_file(layer), f"reading {c.name} layer {layer} from disk", progress)
    vs = VectorSet.open(engine.root / c.path, layer_file(layer), norms_file(layer))
    return m, c, vs


def states_mask(engine: Engine, corpus, n_rows: int, where: str | None) -> np.ndarray | None:
    """Rows of the states matching a predicate over the hidden_states view."""
    where = check_where(where)
    if not where:
        return None
    ids = StateStore(engine.catalog).state_ids(corpus, where)
    return row_mask(ids, n_rows, "the --where filter matches no stored states")


def layer_token_means(engine: Engine, model: str | None, corpus: str | None, layer: int, progress: Progress | None = None,
                      center: bool = False):
    """(model row, corpus row, TokenMeans of ``layer``); with ``center``, each token's mean
    minus the layer's stored corpus mean (the one ``neighbours --center`` uses)."""
    m, c, vs = open_layer(engine, model, corpus, layer, progress)
    ids = np.array(StateStore(engine.catalog).token_ids(c.corpus_id), dtype=np.int64)
    means = token_means(vs.vectors, ids, int(m.vocab_size))
    return m, c, means.centered(layer_centre(StateStore(engine.catalog), c, layer, progress).mean) if center else means


def store_layer_centre(engine: Engine, model: str | None, corpus: str | None, layer: int,
                       progress: Progress | None = None) -> LayerCentre:
    """The layer's mean state and centred norms, computed and stored on first use (outside
    any catalog session: the first computation reads the whole layer)."""
    with engine.catalog.session():
        _, c, _ = open_layer(engine, model, corpus, layer)
    return layer_centre(StateStore(engine.catalog), c, layer, progress)


def state_neighbours(engine: Engine, vector: np.ndarray, *, model: str | None, corpus: str | None, layer: int,
                     k: int = 10, where: str | None = None, index: str = "exact", progress=None):
    """Nearest stored hidden states at ``layer`` to ``vector``, with their context (the
    catalog is read in one session)."""
    with engine.catalog.session():
        m, c, vs = open_layer(engine, model, corpus, layer, progress)
        return m, c, _nearest_states(engine, c, m.name, layer, vs, vector, k, where, index)


def _nearest_states(engine: Engine, c, model_name: str, layer: int, vs: VectorSet, vector: np.ndarray, k: int,
                    where: str | None, index: str, centre: LayerCentre | None = None) -> tuple[StateHit, ...]:
    """The search itself, over a layer already opened (and checked) by :func:`open_layer`;
    with ``centre``, cosine between the query and the rows, both minus the layer's mean."""
    from explorer.store import compressed
    from explorer.store.index import SearchIndex

    store = StateStore(engine.catalog)
    allowed = states_mask(engine, c, vs.n_rows, where)
    rows = vs if centre is None else CenteredRows(vs.vectors, centre.mean, centre.norms)
    query = vector if centre is None else vector - centre.mean
    if index == "exact":
        hits = SearchIndex(rows, None, "numpy").search(query, k, allowed)  # type: ignore[arg-type]
    else:
        path = state_index_path(engine, c, layer, index, centre is not None)
        hits = compressed.search_compressed(compressed.load_compressed(engine.root / path, index), index, rows, query, k, allowed)  # type: ignore[arg-type]
    ids = [int(i) for i in hits.ids[0] if i >= 0]
    meta = store.hits(c, model_name, ids)
    out = []
    for n, (sid, score) in enumerate(zip(ids, hits.scores[0])):
        doc, pos, tok, tid, lang = meta[sid]
        out.append(StateHit(n + 1, float(score), sid, doc, pos, tok, tid, lang, _snippet(store, c.corpus_id, doc, pos)))
    return tuple(out)


def state_index_path(engine: Engine, c, layer: int, index: str, center: bool) -> str:
    """The stored compressed index of a layer (over centred rows with ``center``), or a
    one-line error naming the command that builds it."""
    from explorer.store.compressed import catalog_kind

    path = StateStore(engine.catalog).index_path(c.corpus_id, layer, catalog_kind(index, center))
    if path is None:
        flag = " --center" if center else ""
        raise ExplorerError(f"no {index}{' centred' if center else ''} index for {c.name} layer {layer}; build it with "
                            f"`explorer states-index --corpus {c.name} --layer {layer} --kind {index}{flag}`")
    return path


def _snippet(store: StateStore, corpus_id: int, doc: int, pos: int, before: int = 6, after: int = 3) -> str:
    rows = store.tokens_around(corpus_id, doc, pos - before, pos + after)
    return "".join(f"[{t}]" if p == pos else t for p, t in rows).replace("\n", " ")


def build_state_indexes(engine: Engine, *, model: str | None, corpus: str | None, layers: list[int] | None,
                        kind: str, progress=None, center: bool = False) -> list[dict]:
    """Build compressed indexes for some layers of a corpus; recall@10 is measured and stored.
    With ``center``, over the rows minus the layer's stored mean (kept beside the raw index)."""
    import json

    from explorer.store import compressed
    from explorer.store.centering import MEAN_OF
    from explorer.store.files import sha256_file

    if kind not in compressed.KINDS:
        raise ExplorerError(f"unknown index kind {kind!r}; choose {', '.join(compressed.KINDS)}")
    m = engine.model(model, auto_export=False)
    c = _corpus(engine, m, corpus)
    todo = layers if layers else list(range(c.n_layers))
    stored = compressed.catalog_kind(kind, center)
    out = []
    for n, layer in enumerate(todo):
        _, _, vs = open_layer(engine, m.name, c.name, layer)
        rows = vs
        if center:
            centre = layer_centre(StateStore(engine.catalog), c, layer, progress)
            rows = CenteredRows(vs.vectors, centre.mean, centre.norms)  # type: ignore[assignment]
        rel = f"{c.path}/layer_{layer:02d}.{stored}.faiss"
        rep = compressed.build_and_measure(rows, kind, engine.root / rel)  # type: ignore[arg-type]
        params = {**rep.params, "centered": center, **({"mean_of": MEAN_OF} if center else {})}
        StateStore(engine.catalog).record_index(c.corpus_id, layer, stored, rel, rep.bytes, sha256_file(engine.root / rel),
                                                rep.recall_at_10, json.dumps(params), rep.seconds)
        exact_bytes = vs.n_rows * vs.dim * vs.vectors.dtype.itemsize
        out.append({"layer": layer, **rep.to_dict(), "params": params, "centered": center, "exact_bytes": exact_bytes})
        if progress:
            progress(f"{kind} indexes", n + 1, len(todo))
    return out


class Runners:
    """Models loaded for forward passes, one per model name, kept while the front end lives
    (the TUI reuses them between searches; the CLI loads one per command)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._loaded: dict[str, object] = {}

    def get(self, m: ModelRow, loading: Callable[[str], ContextManager] | None = None):
        if m.name not in self._loaded:
            from explorer.lens.runner import ModelRunner

            if loading is None:
                self._loaded[m.name] = ModelRunner(m)
            else:
                with loading(m.name):
                    self._loaded[m.name] = ModelRunner(m)
        return self._loaded[m.name]


@dataclass(frozen=True)
class StateQuery:
    """Nearest stored states to the state of ``text`` at ``position`` (None: the last token)
    at each of ``layers``, searched with ``index`` (exact, sq8, ivfpq)."""

    text: str
    layers: tuple[int, ...]
    position: int | None = None
    model: str | None = None
    corpus: str | None = None
    k: int = 10
    where: str | None = None
    index: str = "exact"
    center: bool = False  # cosine after subtracting the layer's corpus mean (compressed: the centred index)


def neighbours_of_text(engine: Engine, q: StateQuery, runners: Runners | None = None,
                       loading: Callable[[str], ContextManager] | None = None,
                       progress: Progress | None = None) -> list[StateNeighbours]:
    """Text -> the model's states -> nearest stored states, per layer. The corpus, every
    layer and the position are checked before the model loads (``loading(name)``: a context
    shown while it does)."""
    from explorer.lens.runner import check_position
    from explorer.store.compressed import KINDS

    if q.index not in ("exact", *KINDS):
        raise ExplorerError(f"unknown --index {q.index!r}; choose exact, {', '.join(KINDS)}")
    with engine.catalog.session():
        m = engine.model(q.model, auto_export=False)
        opened = [(layer, open_layer(engine, m.name, q.corpus, layer)) for layer in q.layers]  # fail fast, before the model
        if q.index != "exact":
            for layer, (_, c, _) in opened:
                state_index_path(engine, c, layer, q.index, q.center)
    centres = {layer: layer_centre(StateStore(engine.catalog), c, layer, progress)
               for layer, (_, c, _) in opened} if q.center else {}  # computed once per layer, then stored
    check_position(m, q.text, q.position)
    st = (runners or Runners(engine)).get(m, loading).run(q.text)
    p = st.position(q.position)
    out = []
    with engine.catalog.session():
        for layer, (_, c, vs) in opened:
            if not 0 <= layer < st.layers.shape[0]:
                raise ExplorerError(f"layer {layer} is outside 0..{st.layers.shape[0] - 1}")
            hits = _nearest_states(engine, c, m.name, layer, vs, st.layers[layer, p], q.k, q.where, q.index, centres.get(layer))
            out.append(StateNeighbours(m.name, c.name, layer, q.text, p, st.tokens[p], q.index, hits, q.center))
    return out
