"""Queries over stored hidden states (pure numpy): per-token means, state hits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from explorer.core.numeric import unit_rows


@dataclass(frozen=True)
class StateHit:
    rank: int
    score: float
    state_id: int
    document: int
    position: int
    token: str
    token_id: int
    lang: str | None
    snippet: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StateNeighbours:
    model: str
    corpus: str
    layer: int
    text: str
    position: int
    token: str
    index: str  # exact | sq8 | ivfpq
    results: tuple[StateHit, ...]
    centered: bool = False  # scores are cosines after subtracting the layer's corpus mean

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "results"}
        d["results"] = [h.to_dict() for h in self.results]
        return d


class TokenMeans:
    """Mean hidden state of each token over a corpus at one layer, shaped like a vocabulary.

    ``rows(token_ids)`` and ``cosines`` index by token id (``n_rows`` = vocabulary size);
    tokens absent from the corpus have zero vectors and are excluded through ``seen``.
    """

    def __init__(self, vocab_rows: int, token_ids: np.ndarray, means: np.ndarray, counts: np.ndarray):
        self.n_rows = vocab_rows
        self.token_ids = token_ids.astype(np.int64)
        self.means = means.astype(np.float32)
        self.counts = counts
        self.seen = np.zeros(vocab_rows, dtype=bool)
        self.seen[self.token_ids] = True
        self._row = {int(t): i for i, t in enumerate(self.token_ids)}

    def rows(self, ids) -> np.ndarray:
        out = np.zeros((len(ids), self.means.shape[1]), dtype=np.float32)
        for j, t in enumerate(ids):
            r = self._row.get(int(t))
            if r is not None:
                out[j] = self.means[r]
        return out

    def centered(self, mean: np.ndarray) -> "TokenMeans":
        """The same tokens with ``mean`` (the layer's corpus mean state) subtracted from
        every token's mean: its cosines are centred cosines."""
        return TokenMeans(self.n_rows, self.token_ids, self.means - mean.astype(np.float32), self.counts)

    def cosines(self, queries: np.ndarray) -> np.ndarray:
        q = unit_rows(np.atleast_2d(queries)).T
        out = np.zeros((self.n_rows, q.shape[1]), dtype=np.float32)
        out[self.token_ids] = unit_rows(self.means) @ q
        return out


def token_means(matrix: np.ndarray, state_token_ids: np.ndarray, vocab_rows: int) -> TokenMeans:
    """Group rows of ``matrix`` (one per state) by token id and average them."""
    uniq, inverse, counts = np.unique(state_token_ids, return_inverse=True, return_counts=True)
    sums = np.zeros((len(uniq), matrix.shape[1]), dtype=np.float64)
    for start in range(0, len(inverse), 65536):
        block = np.asarray(matrix[start : start + 65536], dtype=np.float64)
        np.add.at(sums, inverse[start : start + 65536], block)
    return TokenMeans(vocab_rows, uniq, (sums / counts[:, None]).astype(np.float32), counts)
