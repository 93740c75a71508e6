"""Anisotropy of stored hidden states (pure numpy): how much one shared direction
dominates a layer, and cosine after centring.

Hidden states of a language model share a large common component (Ethayarajh 2019,
"How Contextual are Contextualized Word Representations?"): random pairs of states have
a mean cosine far above 0, so raw cosine barely separates neighbours. Subtracting the
layer's mean state over the corpus (centring) removes that component; what remains is
measured here and searched by :class:`CenteredRows`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from explorer.core.numeric import unit_rows

_CHUNK = 65536
SPECTRUM_ROWS = 20_000  # rows sampled (seeded) for the principal directions of a large layer


def layer_mean(matrix: np.ndarray, rows: np.ndarray | None = None, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The mean row of a (memory-mapped) matrix, or of the rows where the boolean mask
    ``rows`` is true, summed in float64 a block at a time (``progress(done, total)``)."""
    total = np.zeros(matrix.shape[1], dtype=np.float64)
    for start in range(0, matrix.shape[0], _CHUNK):
        block = np.asarray(matrix[start : start + _CHUNK], dtype=np.float64)
        total += (block if rows is None else block[rows[start : start + _CHUNK]]).sum(axis=0)
        if progress:
            progress(min(start + _CHUNK, matrix.shape[0]), matrix.shape[0])
    count = matrix.shape[0] if rows is None else int(rows.sum())
    return (total / max(count, 1)).astype(np.float32)


def centered_norms(matrix: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """L2 norm of every row minus ``mean`` (float32), a block at a time."""
    out = np.empty(matrix.shape[0], dtype=np.float32)
    mu = mean.astype(np.float32)
    for start in range(0, matrix.shape[0], _CHUNK):
        block = np.asarray(matrix[start : start + _CHUNK], dtype=np.float32) - mu
        out[start : start + _CHUNK] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


class CenteredRows:
    """A layer's rows seen with the corpus mean subtracted, without copying the matrix.

    Quacks like a VectorSet for :class:`explorer.store.index.SearchIndex`'s numpy path
    and for the compressed indexes of ``explorer.store.compressed``: ``rows(ids)`` are
    centred rows, ``safe_norms()`` their norms, and ``cosines(queries, rows)`` gives
    cos(x - mean, q) for queries that were centred by the caller: x.q - mean.q over the
    centred norms (a zero centred row scores 0)."""

    def __init__(self, vectors: np.ndarray, mean: np.ndarray, norms: np.ndarray):
        self.vectors = vectors
        self.mean = mean.astype(np.float32)
        self.norms = np.where(norms == 0, np.float32(1), norms).astype(np.float32)

    @property
    def n_rows(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def rows(self, ids) -> np.ndarray:
        """The centred rows ``ids`` (float32)."""
        return np.asarray(self.vectors[np.asarray(ids, dtype=np.int64)], dtype=np.float32) - self.mean

    def safe_norms(self) -> np.ndarray:
        return self.norms

    def cosines(self, queries: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """``(rows, n_queries)`` centred cosines with centred queries (made unit here)."""
        q = unit_rows(np.atleast_2d(queries)).T  # (dim, nq)
        lo, hi, _ = (rows or slice(None)).indices(self.n_rows)
        scores = np.empty((max(hi - lo, 0), q.shape[1]), dtype=np.float32)
        for start in range(lo, hi, _CHUNK):
            stop = min(start + _CHUNK, hi)
            scores[start - lo : stop - lo] = np.asarray(self.vectors[start:stop], dtype=np.float32) @ q
        scores -= self.mean @ q
        scores /= self.norms[lo:hi, None]
        return scores


@dataclass(frozen=True)
class LayerAnisotropy:
    """One layer: mean cosine of random pairs raw and centred, norms, and the share of the
    centred variance along the top principal directions."""

    layer: int
    mean_cos_raw: float
    mean_cos_centered: float
    norm_mean: float
    norm_std: float
    top1_variance: float
    top10_variance: float

    def to_dict(self) -> dict:
        return asdict(self)


def random_pairs(n_rows: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` seeded pairs (i, j) of distinct rows, drawn uniformly with replacement."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n_rows, pairs)
    j = (i + rng.integers(1, n_rows, pairs)) % n_rows  # j != i
    return i, j


def _mean_pair_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    cos = np.einsum("ij,ij->i", a[ok], b[ok]) / (na[ok] * nb[ok])
    return float(np.clip(cos, -1.0, 1.0).mean()) if len(cos) else 0.0


def variance_shares(matrix: np.ndarray, mean: np.ndarray, seed: int, top: int = 10) -> tuple[float, float]:
    """(top-1, top-``top``) share of the centred variance, from the eigenvalues of the
    covariance of at most :data:`SPECTRUM_ROWS` rows (seeded sample beyond that)."""
    n = matrix.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, SPECTRUM_ROWS, replace=False)) if n > SPECTRUM_ROWS else slice(None)
    x = np.asarray(matrix[rows], dtype=np.float64) - mean.astype(np.float64)
    eig = np.sort(np.linalg.eigvalsh(x.T @ x))[::-1]
    total = float(eig.clip(min=0).sum())
    if total <= 0:
        return 0.0, 0.0
    return float(eig[0] / total), float(eig[:top].sum() / total)


def anisotropy_of_layer(layer: int, matrix: np.ndarray, norms: np.ndarray, mean: np.ndarray,
                        pairs: int, seed: int) -> LayerAnisotropy:
    """Measure one layer; ``norms`` are the stored raw row norms, ``mean`` its mean row."""
    if matrix.shape[0] < 2:
        raise ValueError("anisotropy needs at least two rows")
    i, j = random_pairs(matrix.shape[0], pairs, seed)
    order = np.argsort(np.concatenate([i, j]), kind="stable")  # read the memory map in row order
    both = np.empty((2 * pairs, matrix.shape[1]), dtype=np.float32)
    both[order] = np.asarray(matrix[np.concatenate([i, j])[order]], dtype=np.float32)
    a, b = both[:pairs], both[pairs:]
    raw = _mean_pair_cosine(a, b)
    centred = _mean_pair_cosine(a - mean, b - mean)
    top1, top10 = variance_shares(matrix, mean, seed)
    return LayerAnisotropy(layer, raw, centred, float(norms.mean()), float(norms.std()), top1, top10)
