"""``explorer states-stats``: per layer of a stored corpus, how anisotropic its hidden
states are (mean cosine of random pairs raw and centred, norms, top principal shares)."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.core.types import Progress
from explorer.errors import ExplorerError
from explorer.query.anisotropy import SPECTRUM_ROWS, LayerAnisotropy, anisotropy_of_layer
from explorer.services.engine import Engine
from explorer.services.states import open_layer
from explorer.store.centering import MEAN_OF, layer_centre
from explorer.store.states import StateStore

__all__ = ["CorpusAnisotropy", "LayerAnisotropy", "states_stats"]

DEFAULT_PAIRS = 10_000


@dataclass(frozen=True)
class CorpusAnisotropy:
    model: str
    corpus: str
    states: int
    pairs: int
    seed: int
    spectrum_rows: int  # rows the principal directions were computed from
    layers: tuple[LayerAnisotropy, ...]
    mean_of: str = MEAN_OF

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("model", "corpus", "states", "pairs", "seed", "spectrum_rows", "mean_of")}
        d["layers"] = [v.to_dict() for v in self.layers]
        return d


def states_stats(engine: Engine, *, model: str | None = None, corpus: str | None = None, layers: list[int] | None = None,
                 pairs: int = DEFAULT_PAIRS, seed: int = 0, progress: Progress | None = None) -> CorpusAnisotropy:
    """Measure every layer (or ``layers``) of a finished corpus. Each layer's mean is the
    stored one (computed and stored on first use, then reused by ``neighbours --center``)."""
    if pairs < 1:
        raise ExplorerError("--pairs must be at least 1")
    with engine.catalog.session():
        m, c, _ = open_layer(engine, model, corpus, layers[0] if layers else 0)  # model, corpus and range checked
        todo = sorted(set(layers)) if layers else list(range(c.n_layers))  # in order, each once
        for layer in todo:
            if not 0 <= layer < c.n_layers:
                raise ExplorerError(f"layer {layer} is outside 0..{c.n_layers - 1} for corpus {c.name}")
    if c.n_states < 2:
        raise ExplorerError(f"corpus {c.name} has {c.n_states} state(s); anisotropy needs at least two")
    out = []
    for n, layer in enumerate(todo):
        _, _, vs = open_layer(engine, m.name, c.name, layer)
        centre = layer_centre(StateStore(engine.catalog), c, layer)
        out.append(anisotropy_of_layer(layer, vs.vectors, vs.norms, centre.mean, pairs, seed + layer))
        if progress:
            progress("layers", n + 1, len(todo))
    return CorpusAnisotropy(m.name, c.name, c.n_states, pairs, seed, min(c.n_states, SPECTRUM_ROWS), tuple(out))
