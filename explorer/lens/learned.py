"""Learned lenses: one affine translator per layer, read out like the logit lens.

The stored states (:mod:`explorer.models.capture`) are block outputs *before* the final
norm at every layer, the last one included, so the translator of layer l maps h_l to an
estimate of the last layer's pre-norm state h_L, as Din et al. 2023 ("Jump to
Conclusions") do, and the lens reads that estimate exactly as the logit lens reads a
layer: final norm, unembedding, the model's softcap. (``hidden_states[-1]`` of
transformers 5.x is already final-normed; we never use it.) With the identity map the
learned lens *is* the logit lens, and the last layer keeps the identity: both lenses give
the model's own distribution there.

``linear`` (closed form): per layer, ridge regression of h_L on h_l, shrunk toward the
identity (Belrose et al.'s tuned lens is also initialised at the identity): with
X = h_l and Y = h_L centred over the training states,
A = I + (X'X + lam I)^-1 X'(Y - X), b = mean(Y) - mean(X) A, prediction h_l A + b.
lam = alpha * trace(X'X) / d; alpha is chosen per layer from :data:`ALPHAS` by the
held-out error where the unembedding reads it, |n(h_l A + b) - n(h_L)|^2 with n the final
norm (a proxy for the KL, which costs a full-vocabulary product per candidate).
Position 0 (BOS) is left out of fitting and evaluation: its states are huge outliers
(Gemma's reach 1e5) and its next token says nothing about the layer's content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from explorer.core.types import Progress
from explorer.errors import CorruptFile, ExplorerError

KINDS = ("linear", "kl")  # kl: the tuned lens, trained in explorer.lens.tuned
ALPHAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
CHUNK = 8192  # rows per block while accumulating X'X (float64)
SELECT_ROWS = 4096  # held-out rows used to choose alpha


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ExplorerError(f"unknown lens kind {kind!r}; choose one of {', '.join(KINDS)}")


@dataclass
class Translator:
    """A (L, d, d) and b (L, d): layer l < L maps h -> h @ A[l] + b[l]; layer L is the identity."""

    kind: str
    A: np.ndarray
    b: np.ndarray
    alphas: np.ndarray  # the ridge strength chosen per layer

    @property
    def n_layers(self) -> int:
        return self.A.shape[0]

    def apply(self, hidden):
        """(L+1, d) torch tensor (or (L+1, n, d)), one row (block) per layer -> the same,
        each layer but the last translated."""
        import torch

        A = torch.from_numpy(self.A)
        b = torch.from_numpy(self.b)
        if hidden.shape[0] != self.n_layers + 1:
            raise ExplorerError(f"the lens has {self.n_layers + 1} layers, the states {hidden.shape[0]}")
        h = hidden.float()
        head = torch.einsum("l...d,lde->l...e", h[:-1], A) + b.view(b.shape[0], *([1] * (h.dim() - 2)), -1)
        return torch.cat([head, h[-1:]], dim=0)

    def layer(self, layer: int, rows):
        """(n, d) torch rows of one layer through its translator."""
        import torch

        if layer >= self.n_layers:
            return rows.float()
        return rows.float() @ torch.from_numpy(self.A[layer]) + torch.from_numpy(self.b[layer])

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, kind=np.array(self.kind), A=self.A, b=self.b, alphas=self.alphas)

    @classmethod
    def load(cls, path: Path) -> Translator:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(str(z["kind"]), z["A"].astype(np.float32), z["b"].astype(np.float32), z["alphas"])
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptFile(f"cannot read lens file {path}: {exc}") from None


def _moments(x: np.ndarray, y: np.ndarray, rows: np.ndarray):
    """Sums over ``rows`` in float64: n, sum x, sum y, X'X, X'(Y - X)."""
    d = x.shape[1]
    sx, sy = np.zeros(d), np.zeros(d)
    xx, xr = np.zeros((d, d)), np.zeros((d, d))
    for start in range(0, len(rows), CHUNK):
        idx = rows[start : start + CHUNK]
        a = np.asarray(x[idx], dtype=np.float64)
        t = np.asarray(y[idx], dtype=np.float64)
        sx += a.sum(0)
        sy += t.sum(0)
        xx += a.T @ a
        xr += a.T @ (t - a)
    return len(rows), sx, sy, xx, xr


def fit_layer(x: np.ndarray, y: np.ndarray, train: np.ndarray, held: np.ndarray,
              normed: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """(A, b, alpha) for one layer: rows ``train`` of ``x`` (h_l) and ``y`` (h_L); alpha
    chosen on rows ``held`` by the error after the final norm ``normed``."""
    n, sx, sy, xx, xr = _moments(x, y, train)
    mx, my = sx / n, sy / n
    cov = xx - n * np.outer(mx, mx)
    cross = xr - n * np.outer(mx, my - mx)
    evals, evecs = np.linalg.eigh(cov)
    proj = evecs.T @ cross
    scale = max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    hx = np.asarray(x[held[:SELECT_ROWS]], dtype=np.float64)
    target = normed(np.asarray(y[held[:SELECT_ROWS]], dtype=np.float32)).astype(np.float64)
    best = None
    for alpha in ALPHAS:
        delta = evecs @ (proj / (np.clip(evals, 0, None) + alpha * scale)[:, None])
        A = np.eye(cov.shape[0]) + delta
        b = my - mx @ A
        err = float(((normed((hx @ A + b).astype(np.float32)) - target) ** 2).sum(1).mean()) if len(hx) else 0.0
        if best is None or err < best[0]:
            best = (err, A, b, alpha)
    _, A, b, alpha = best
    return A.astype(np.float32), b.astype(np.float32), alpha


def fit_linear(layers: Sequence[np.ndarray], train: np.ndarray, held: np.ndarray,
               normed: Callable[[np.ndarray], np.ndarray], progress: Progress | None = None) -> Translator:
    """The ``linear`` translator from the states of every layer (``layers[l]``: rows x d,
    memory-mapped is fine); ``train``/``held``: row numbers, position 0 already left out."""
    last = len(layers) - 1
    d = layers[0].shape[1]
    A = np.zeros((last, d, d), dtype=np.float32)
    b = np.zeros((last, d), dtype=np.float32)
    alphas = np.zeros(last)
    for layer in range(last):
        A[layer], b[layer], alphas[layer] = fit_layer(layers[layer], layers[last], train, held, normed)
        if progress:
            progress("layers fitted", layer + 1, last)
    return Translator("linear", A, b, alphas)
