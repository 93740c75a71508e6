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
error where the unembedding reads it, |n(h_l A + b) - n(h_L)|^2 with n the final norm (a
proxy for the KL, which costs a full-vocabulary product per candidate), on validation rows
carved from the TRAINING documents (the last tenth of the training rows, at most
:data:`SELECT_ROWS`), fitted on the rest; the chosen alpha is then refitted on all training
rows. The held-out documents are never looked at while fitting, so the held-out KL that
``lens fidelity`` reports is a test figure, not one the fit was tuned on.
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
SELECT_ROWS = 4096  # at most this many validation rows (from the training rows) choose alpha
VALIDATION_SHARE = 0.1  # ... and at most this share of them


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


def _solve(moments, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) toward the identity from the sums ``_moments`` gives, ridge strength ``alpha``."""
    n, sx, sy, xx, xr = moments
    mx, my = sx / n, sy / n
    cov = xx - n * np.outer(mx, mx)
    cross = xr - n * np.outer(mx, my - mx)
    scale = max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    A = np.eye(cov.shape[0]) + np.linalg.solve(cov + alpha * scale * np.eye(cov.shape[0]), cross)
    return A, my - mx @ A


def fit_layer(x: np.ndarray, y: np.ndarray, fit: np.ndarray, val: np.ndarray,
              normed: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """(A, b, alpha) for one layer, from rows of ``x`` (h_l) and ``y`` (h_L): alpha is the
    one whose map fitted on rows ``fit`` has the least error after the final norm
    ``normed`` on rows ``val``; (A, b) are then fitted on ``fit`` and ``val`` together (the
    sums add, so the rows are read once)."""
    part = _moments(x, y, fit)
    if not len(val):
        return (*(v.astype(np.float32) for v in _solve(part, ALPHAS[0])), ALPHAS[0])
    rest = _moments(x, y, val)
    hx = np.asarray(x[val], dtype=np.float64)
    target = normed(np.asarray(y[val], dtype=np.float32)).astype(np.float64)
    errors = []
    for alpha in ALPHAS:
        A, b = _solve(part, alpha)
        errors.append(float(((normed((hx @ A + b).astype(np.float32)) - target) ** 2).sum(1).mean()))
    alpha = ALPHAS[int(np.argmin(errors))]
    A, b = _solve(tuple(p + r for p, r in zip(part, rest)), alpha)
    return A.astype(np.float32), b.astype(np.float32), alpha


def spaced(rows: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` of ``rows``, evenly spaced (every document part represented)."""
    if len(rows) <= cap:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, cap).astype(int))]


def validation_split(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows): the last tenth of the training rows (the last training
    documents; they come round-robin over languages), at most SELECT_ROWS."""
    n_val = min(SELECT_ROWS, int(len(train) * VALIDATION_SHARE)) if len(train) >= 10 else 0
    return train[: len(train) - n_val], train[len(train) - n_val :]


def fit_linear(layers: Sequence[np.ndarray], train: np.ndarray,
               normed: Callable[[np.ndarray], np.ndarray], progress: Progress | None = None) -> Translator:
    """The ``linear`` translator from the states of every layer (``layers[l]``: rows x d,
    memory-mapped is fine); ``train``: training row numbers, position 0 already left out
    (alpha is chosen on a validation part of them: :func:`validation_split`)."""
    fit, val = validation_split(np.asarray(train))
    last = len(layers) - 1
    d = layers[0].shape[1]
    A = np.zeros((last, d, d), dtype=np.float32)
    b = np.zeros((last, d), dtype=np.float32)
    alphas = np.zeros(last)
    for layer in range(last):
        A[layer], b[layer], alphas[layer] = fit_layer(layers[layer], layers[last], fit, val, normed)
        if progress:
            progress("layers fitted", layer + 1, last)
    return Translator("linear", A, b, alphas)
