"""The ``kernel=batched`` engine of :mod:`explorer.experiments.word2vec`: torch, many
pairs per step (see that module's docstring), on any torch device, with
``shared_negatives`` as an option (one negative set per centre word, Ji et al. 2016).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

CHUNK = 200_000  # centre words whose pairs are generated and shuffled together


# -- training data ---------------------------------------------------------------------


def _offsets(ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, window: int,
             rng: np.random.Generator) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(column, centre positions, context positions) for each window offset of the
    centres ``lo..hi-1``, each centre with its reduced window ``b`` in ``1..window``."""
    centres = np.arange(lo, hi)
    b = rng.integers(1, window + 1, hi - lo)
    col = 0
    for o in range(1, window + 1):
        for j in (centres - o, centres + o):
            ok = (b >= o) & (j >= 0) & (j < len(ids))
            ok[ok] = sent[j[ok]] == sent[centres[ok]]
            yield col, np.flatnonzero(ok), j[ok]
            col += 1


def sg_pairs(ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, window: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (input = context word, output = centre word) pairs of centres lo..hi-1."""
    ins, outs = [], []
    for _, rows, j in _offsets(ids, sent, lo, hi, window, rng):
        ins.append(ids[j])
        outs.append(ids[lo + rows])
    order = rng.permutation(sum(len(x) for x in ins))
    return np.concatenate(ins)[order], np.concatenate(outs)[order]


def cbow_rows(ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, window: int,
              rng: np.random.Generator, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contexts, centre words, context counts) of the centres lo..hi-1 that have context:
    each row's context words first, then ``pad``; rows shuffled, then stably sorted by
    decreasing count, so that a batch of consecutive rows needs few padded columns."""
    ctx = np.full((hi - lo, 2 * window), pad, dtype=np.int64)
    for col, rows, j in _offsets(ids, sent, lo, hi, window, rng):
        ctx[rows, col] = ids[j]
    ctx = np.take_along_axis(ctx, np.argsort(ctx == pad, axis=1, kind="stable"), axis=1)
    count = (ctx != pad).sum(axis=1)
    order = rng.permutation(hi - lo)
    order = order[np.argsort(-count[order], kind="stable")]
    order = order[count[order] > 0]
    return ctx[order], ids[lo + order], count[order]


# -- the model -------------------------------------------------------------------------


class SGNS:
    """Input/output vectors and the negative-sampling update, batched (no autograd).

    Every intermediate lives in a flat buffer allocated once, viewed at the step's shape
    (``out=``): fresh multi-megabyte tensors per step would cost more in page faults than
    the arithmetic. Loss and pair count are summed on the device, read when reported."""

    def __init__(self, init: np.ndarray, table: np.ndarray, negative: int, batch: int, width: int,
                 seed: int, device: str = "cpu"):
        import torch

        self.torch, self.device, self.negative = torch, device, negative
        self.gen = torch.Generator(device=device).manual_seed(seed)
        (v, dim), k1 = init.shape, negative + 1
        self.w_in = torch.zeros(v + 1, dim, device=device)  # row v: the padding of context windows
        self.w_in[:v] = torch.from_numpy(init).to(device)  # (the padding never changes: its gradients are masked)
        self.w_out, self.pad = torch.zeros(v, dim, device=device), v
        self.table = torch.from_numpy(table).to(device)
        self.loss, self.pairs = torch.zeros((), device=device), torch.zeros((), device=device)
        size = {"h": batch * width * dim, "h2": batch * dim, "out": batch * k1 * dim, "s": batch * width * k1,
                "gh": batch * width * dim, "gout": batch * k1 * dim}
        self._buf = {k: torch.empty(n, device=device) for k, n in size.items()}
        self._buf["draws"] = torch.empty(batch * negative, dtype=torch.int64, device=device)
        self._buf["targets"] = torch.empty(batch * k1, dtype=torch.int64, device=device)

    def buf(self, name: str, *shape: int):
        n = int(np.prod(shape))
        return self._buf[name][:n].view(*shape)

    def _targets(self, positive):
        """(b, 1 + negative) int64: the positive, then noise words from the table."""
        b, k = len(positive), self.negative
        targets = self.buf("targets", b, k + 1)
        draws = self.torch.randint(0, len(self.table), (b * k,), generator=self.gen, device=self.device,
                                   out=self.buf("draws", b * k))
        targets[:, 1:] = self.table.index_select(0, draws).view(b, k)
        targets[:, 0] = positive
        return targets

    def _update(self, h, mask, positive, lr: float):
        """Score each of the ``c`` vectors ``h[i]`` (b, c, d; ``mask`` (b, c) marks the
        real ones) against ``positive[i]`` and the same fresh negatives; update ``w_out``
        and return the gradient step for ``h`` (zero where masked)."""
        torch, f = self.torch, self.torch.nn.functional
        (b, c, d), k1 = h.shape, self.negative + 1
        targets = self._targets(positive)
        out = torch.index_select(self.w_out, 0, targets.view(-1), out=self.buf("out", b * k1, d)).view(b, k1, d)
        s = torch.bmm(h, out.transpose(1, 2), out=self.buf("s", b, c, k1))
        weight = (targets != positive.unsqueeze(1)).to(s.dtype)
        weight[:, 0] = 1  # the positive; a noise word equal to it is skipped
        weight = weight.unsqueeze(1) * mask.unsqueeze(2)
        self.loss -= (f.logsigmoid(s[:, :, 0]) * weight[:, :, 0]).sum() + (f.logsigmoid(-s[:, :, 1:]) * weight[:, :, 1:]).sum()
        g = torch.sigmoid(s).neg_()
        g[:, :, 0] += 1
        g.mul_(weight).mul_(lr)
        gh = torch.bmm(g, out, out=self.buf("gh", b, c, d))
        gout = self.buf("gout", b, k1, d)
        if c == 1:  # an outer product: bmm with an inner dimension of 1 is slow on CPU
            torch.mul(g.transpose(1, 2), h, out=gout)
        else:
            torch.bmm(g.transpose(1, 2), h, out=gout)
        self.w_out.index_add_(0, targets.view(-1), gout.view(-1, d))
        return gh

    def window_step(self, contexts, centres, lr: float) -> None:
        """Skip-gram: every context word of a centre against it (``contexts`` (b, c),
        padded); c = 1: one pair per row, fresh negatives each."""
        b, c = contexts.shape
        flat = contexts.reshape(-1)
        h = self.torch.index_select(self.w_in, 0, flat, out=self.buf("h", b * c, self.w_in.shape[1])).view(b, c, -1)
        mask = (contexts != self.pad).to(h.dtype)
        self.pairs += mask.sum()
        gh = self._update(h, mask, centres, lr)
        self.w_in.index_add_(0, flat, gh.view(b * c, -1))

    def cbow_step(self, contexts, centres, lr: float) -> None:
        """CBOW: the mean of each row's context vectors against its centre word."""
        torch = self.torch
        (b, c), d = contexts.shape, self.w_in.shape[1]
        flat = contexts.reshape(-1)
        mask = (contexts != self.pad).to(self.w_in.dtype)
        count = mask.sum(1, keepdim=True).unsqueeze(2)
        self.pairs += b
        rows = torch.index_select(self.w_in, 0, flat, out=self.buf("h", b * c, d)).view(b, c, d)
        h = torch.sum(rows, 1, keepdim=True, out=self.buf("h2", b, 1, d)).div_(count)
        gh = self._update(h, torch.ones_like(count[:, :, 0]), centres, lr)  # to every context row, undivided
        self.w_in.index_add_(0, flat, torch.mul(gh, mask.unsqueeze(2), out=self.buf("h", b, c, d)).view(b * c, d))


# -- the engine ------------------------------------------------------------------------


def _rows(config: Any, ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, rng: np.random.Generator,
          pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (rows, width), centre words, inputs per row) of centres lo..hi-1."""
    if config.arch == "sg" and not config.shared_negatives:
        a, b = sg_pairs(ids, sent, lo, hi, config.window, rng)
        return a[:, None], b, np.ones(len(b), dtype=np.int64)
    return cbow_rows(ids, sent, lo, hi, config.window, rng, pad)


@contextmanager
def torch_training(threads: int) -> Iterator[None]:
    """No autograd, and ``threads`` torch threads (0: as set), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(before)


class BatchedEngine:
    """The word2vec engine protocol on :class:`SGNS` (call it inside :func:`torch_training`)."""

    kernel, chunk_words, compile_s = "batched", CHUNK, 0.0

    def __init__(self, init: np.ndarray, table: np.ndarray, config: Any, seed: int, device: str):
        self.config, self.device = config, device
        self.model = SGNS(init, table, config.negative, config.batch, 2 * config.window, seed, device)
        self.step = self.model.cbow_step if config.arch == "cbow" else self.model.window_step

    def new_epoch(self) -> None:
        self.model.loss.zero_(), self.model.pairs.zero_()

    def train(self, ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, sched: np.ndarray,
              rng: np.random.Generator, tick: Callable[[float], None]) -> None:
        """Centre positions lo..hi-1: their rows shuffled, in batches; ``tick(raw words
        done)`` after each batch. ``sched``: as the numba kernel's."""
        import torch

        lr0, min_lr, done0, per_word, total = (float(x) for x in sched)
        a, b, width = _rows(self.config, ids, sent, lo, hi, rng, self.model.pad)
        per_row = (hi - lo) * per_word / max(1, len(b))  # raw words a row stands for
        done, batch = done0 + lo * per_word, self.config.batch
        a, b = torch.from_numpy(a).to(self.device), torch.from_numpy(b).to(self.device)
        for s in rng.permutation(np.arange(0, len(b), batch)):
            self.step(a[s : s + batch, : width[s]], b[s : s + batch], max(min_lr, lr0 - (lr0 - min_lr) * done / total))
            done += min(batch, len(b) - s) * per_row
            tick(done)

    def loss(self) -> tuple[float, int]:
        """(summed loss, pairs) of this epoch so far."""
        return float(self.model.loss), int(self.model.pairs)

    def vectors(self) -> np.ndarray:
        return self.model.w_in[:-1].cpu().numpy().astype(np.float32)
