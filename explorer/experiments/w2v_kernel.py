"""word2vec's per-pair SGD compiled with numba (the optional ``fast`` extra): the
``kernel=numba`` engine of :mod:`explorer.experiments.word2vec`.

The algorithm of word2vec.c / gensim, one update at a time on one thread. For each centre
word of a chunk, a reduced window ``b`` uniform in ``1..window`` over the (subsampled)
words of its sentence. Skip-gram trains every (input = context word, output = centre
word) pair of the window, each against the centre and ``negative`` noise words drawn
afresh for that pair from the unigram^0.75 distribution (a noise word equal to the centre
is skipped); the input row gets the pair's summed error after its last target. CBOW trains
the mean of the window's input rows against the centre and adds the whole error to each
of them (word2vec.c, and gensim's default ``cbow_mean=1``; gensim divides it only for a
sum of rows). The learning rate falls linearly with the raw words processed, recomputed
at every centre word.

As word2vec.c: random draws (windows, noise words) from its 64-bit linear congruential
generator, here scaled to a range by a multiplication instead of a modulo (a division
costs more than the rest of a draw); the sigmoid read from a table of 1000 slots over
-6..6 (each slot's value taken at its midpoint), 0 below -6 and 1 above 6. The loss,
``-log sigmoid(f)`` for the centre and ``-log(1 - sigmoid(f))`` per noise word, is read
from a table at the same slots (beyond +-6: its value at +-6).

Noise words come from Walker's alias table (two draws: a uniform word, then a coin that
keeps it or takes its alias): the exact distribution in 8 bytes a word. word2vec.c's
table (up to 2e7 slots here, 4 MB at least) only approximates it and, read at random,
misses the cache once other processes share it: with it the kernel ran at half the
speed on a busy machine.

Rows are padded to a multiple of 16 floats (64 bytes) and the matrices aligned to 64
bytes, so that every row starts a cache line and the vector loops have no remainder; the
padding stays zero (it adds nothing to a dot product, so it never gets a gradient). The
two kernels repeat their loop over targets rather than share a helper: a helper given
arrays costs reference counting at every call (measurably slower here). Row numbers are
read into a local before a loop over a row, or the compiler, unable to rule out that a
store changes ``ids``, reads it again at every element and cannot vectorize.

Compiled code is cached on disk (numba's ``cache=True``) where a cache directory can be
written (beside this file, else numba's user cache dir); otherwise it compiles in every
process. :func:`compile_kernels` compiles (or loads) it; its seconds are reported as
``compile_s``, never counted as training time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numba
import numpy as np

MUL, ADD = np.uint64(25214903917), np.uint64(11)  # word2vec.c's linear congruential generator
MAX_EXP, TABLE_SIZE = 6.0, 1000  # the sigmoid table spans -MAX_EXP..MAX_EXP (word2vec.c)
CHUNK_WORDS = 10_000  # centre words per call into the kernel (gensim's job size)
ALIGN = 16  # floats: rows padded to a multiple of 64 bytes


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """SIGMOID[i]: 0, then the sigmoid at the midpoint of each of the TABLE_SIZE slots
    over -6..6, then 1 (index 0: below -6; TABLE_SIZE + 1: above 6). LOSS[i]: -log
    sigmoid (a centre word's loss) at the same points (+-6 at the ends), then LOSS[TABLE_SIZE
    + 2 + i]: -log(1 - sigmoid) (a noise word's)."""
    mid = ((np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE * 2 - 1) * MAX_EXP
    x = np.concatenate([[-MAX_EXP], mid, [MAX_EXP]])
    sigmoid = np.concatenate([[0.0], 1 / (1 + np.exp(-mid)), [1.0]])
    loss = np.concatenate([np.logaddexp(0, -x), np.logaddexp(0, x)])
    return sigmoid.astype(np.float32), loss.astype(np.float32)


SIGMOID, LOSS = _tables()
NOISE_SIDE = TABLE_SIZE + 2  # offset of the noise words' losses in LOSS
# float32 constants: a float64 one would turn the kernel's float32 arithmetic into float64
_MAX, _SCALE = np.float32(MAX_EXP), np.float32(TABLE_SIZE / (2 * MAX_EXP))
_ONE, _ZERO = np.float32(1.0), np.float32(0.0)
_COIN = np.float32(2.0**-24)  # a 24-bit integer times this: uniform in [0, 1)


# fast-math without assuming finite values: reassociation lets dot products vectorize,
# while a diverging run (inf, NaN) still compares as IEEE says and indexes no table wrongly
FAST = {"reassoc", "contract", "nsz", "arcp", "afn"}


def _jit(fn):
    """njit with an on-disk cache where one can be written, else without."""
    try:
        return numba.njit(nogil=True, fastmath=FAST, cache=True)(fn)
    except RuntimeError:  # no writable cache location: compile in every process
        return numba.njit(nogil=True, fastmath=FAST)(fn)


def _inline(fn):
    """A helper inlined into its callers (pass it scalars: an array argument costs
    reference counting on every call)."""
    return numba.njit(inline="always", fastmath=FAST)(fn)


@_inline
def _next(rnd):
    return rnd * MUL + ADD


@_inline
def _below(rnd, n):
    """A number in 0..n-1 (n < 2^32) from the generator's top 32 bits."""
    return ((rnd >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)


@_inline
def _lr(p, lr0, min_lr, done0, per_word, total):
    """The learning rate at centre position ``p`` (raw words done: done0 + p per_word)."""
    return np.float32(max(min_lr, lr0 - (lr0 - min_lr) * (done0 + p * per_word) / total))


@_inline
def _noise_word(rnd, keep, alias):
    """(generator, a noise word): a uniform word, kept with probability keep[word], else
    its alias (two draws: the word from the top 32 bits, the coin from the top 24)."""
    rnd = _next(rnd)
    t = np.int64(_below(rnd, keep.shape[0]))
    rnd = _next(rnd)
    if np.float32(rnd >> np.uint64(40)) * _COIN >= keep[t]:
        t = np.int64(alias[t])
    return rnd, t


@_inline
def _slot(f):
    """The table index of score ``f`` (0 below -6, TABLE_SIZE + 1 above 6, 0 for NaN)."""
    if -_MAX < f < _MAX:
        return 1 + int((f + _MAX) * _SCALE)
    return TABLE_SIZE + 1 if f >= _MAX else 0


@_jit
def sg_chunk(w_in, w_out, ids, sent, lo, hi, window, negative, keep, alias, sched, state, stats):
    """Skip-gram on centre positions lo..hi-1 of ``ids`` (sentence ids ``sent``). Noise
    words: ``keep``, ``alias`` from :func:`alias_table`. ``sched``: (lr0, min_lr, raw words
    done at position 0, raw words per position, total raw words); ``state``: the
    generator (updated); ``stats`` += (summed loss, pairs)."""
    dim, n = w_in.shape[1], ids.shape[0]
    lr0, min_lr, done0, per_word, total = sched[0], sched[1], sched[2], sched[3], sched[4]
    work = np.empty(dim, np.float32)
    rnd, loss, pairs = state[0], 0.0, 0
    for p in range(lo, hi):
        lr = _lr(p, lr0, min_lr, done0, per_word, total)
        rnd = _next(rnd)
        b = int(_below(rnd, window)) + 1
        for j in range(max(0, p - b), min(n, p + b + 1)):
            if j == p or sent[j] != sent[p]:
                continue
            h = ids[j]  # the context word's input row
            for d in range(dim):
                work[d] = 0
            pair_loss = _ZERO
            for k in range(negative + 1):
                if k == 0:
                    t, label, side = ids[p], _ONE, 0
                else:
                    rnd, t = _noise_word(rnd, keep, alias)
                    label, side = _ZERO, NOISE_SIDE
                    if t == ids[p]:
                        continue
                f = _ZERO
                for d in range(dim):
                    f += w_in[h, d] * w_out[t, d]
                i = _slot(f)
                pair_loss += LOSS[side + i]
                g = (label - SIGMOID[i]) * lr
                for d in range(dim):
                    work[d] += g * w_out[t, d]
                    w_out[t, d] += g * w_in[h, d]
            loss += pair_loss
            pairs += 1
            for d in range(dim):
                w_in[h, d] += work[d]
    state[0], stats[0], stats[1] = rnd, stats[0] + loss, stats[1] + pairs


@_jit
def cbow_chunk(w_in, w_out, ids, sent, lo, hi, window, negative, keep, alias, sched, state, stats):
    """CBOW on centre positions lo..hi-1: the mean of the window's input rows against the
    centre; its error added to each context row. Arguments as :func:`sg_chunk`'s."""
    dim, n = w_in.shape[1], ids.shape[0]
    lr0, min_lr, done0, per_word, total = sched[0], sched[1], sched[2], sched[3], sched[4]
    h, work = np.empty(dim, np.float32), np.empty(dim, np.float32)
    rnd, loss, pairs = state[0], 0.0, 0
    for p in range(lo, hi):
        lr = _lr(p, lr0, min_lr, done0, per_word, total)
        rnd = _next(rnd)
        b = int(_below(rnd, window)) + 1
        a, z = max(0, p - b), min(n, p + b + 1)
        count = 0
        for d in range(dim):
            h[d] = 0
        for j in range(a, z):
            if j != p and sent[j] == sent[p]:
                c = ids[j]  # (read once: in the loop the compiler would read it for every d)
                for d in range(dim):
                    h[d] += w_in[c, d]
                count += 1
        if count == 0:
            continue
        inv = _ONE / np.float32(count)
        for d in range(dim):
            h[d] *= inv
            work[d] = 0
        pair_loss = _ZERO
        for k in range(negative + 1):
            if k == 0:
                t, label, side = ids[p], _ONE, 0
            else:
                rnd, t = _noise_word(rnd, keep, alias)
                label, side = _ZERO, NOISE_SIDE
                if t == ids[p]:
                    continue
            f = _ZERO
            for d in range(dim):
                f += h[d] * w_out[t, d]
            i = _slot(f)
            pair_loss += LOSS[side + i]
            g = (label - SIGMOID[i]) * lr
            for d in range(dim):
                work[d] += g * w_out[t, d]
                w_out[t, d] += g * h[d]
        loss += pair_loss
        pairs += 1
        for j in range(a, z):
            if j != p and sent[j] == sent[p]:
                c = ids[j]
                for d in range(dim):
                    w_in[c, d] += work[d]
    state[0], stats[0], stats[1] = rnd, stats[0] + loss, stats[1] + pairs


def compile_kernels(cbow: bool | None = None) -> float:
    """Compile (or load from the cache) the CBOW or the skip-gram kernel (None: both) for
    the argument types training uses; returns the seconds it took."""
    start = time.perf_counter()
    ids, sent = np.zeros(3, np.int64), np.zeros(3, np.int64)
    keep, alias = alias_table(np.ones(2))
    sched = np.array([0.025, 1e-4, 0.0, 1.0, 1.0])
    for chunk in [sg_chunk, cbow_chunk] if cbow is None else [cbow_chunk if cbow else sg_chunk]:
        w = np.zeros((2, ALIGN), np.float32)
        chunk(w, w.copy(), ids, sent, 0, 3, 1, 1, keep, alias, sched, np.ones(1, np.uint64), np.zeros(2))
    return time.perf_counter() - start


def alias_table(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of the unigram^0.75 distribution (Vose's construction):
    (keep float32, alias int32). Word i is drawn with probability (keep[i] + the keep
    complements of the words whose alias it is) / len(counts)."""
    share = counts.astype(np.float64) ** 0.75
    share = share / share.sum() * len(share)
    keep, alias = np.ones(len(share)), np.arange(len(share))
    small, large = [i for i in range(len(share)) if share[i] < 1], [i for i in range(len(share)) if share[i] >= 1]
    while small and large:
        s, big = small.pop(), large.pop()
        keep[s], alias[s] = share[s], big
        share[big] -= 1 - share[s]
        (small if share[big] < 1 else large).append(big)
    return keep.astype(np.float32), alias.astype(np.int32)  # what is left has share 1 (rounding)


def aligned_rows(rows: int, dim: int) -> np.ndarray:
    """A zero float32 (rows, dim padded to ALIGN) matrix whose data starts on 64 bytes."""
    width = -(-dim // ALIGN) * ALIGN
    buf = np.zeros(rows * width + ALIGN, np.float32)
    start = (-buf.ctypes.data % 64) // 4
    return buf[start : start + rows * width].reshape(rows, width)


class NumbaEngine:
    """The word2vec engine protocol (see :mod:`explorer.experiments.word2vec`) on the
    compiled kernels: vectors in numpy, one thread."""

    kernel, chunk_words = "numba", CHUNK_WORDS

    def __init__(self, init: np.ndarray, counts: np.ndarray, cbow: bool, window: int, negative: int,
                 seed: int):
        self.compile_s = compile_kernels(cbow)
        self.dim = init.shape[1]
        self.w_in, self.w_out = aligned_rows(*init.shape), aligned_rows(*init.shape)
        self.w_in[:, : self.dim] = init
        self.keep, self.alias = alias_table(counts)
        self.fn, self.window, self.negative = cbow_chunk if cbow else sg_chunk, window, negative
        self.state = np.array([np.random.default_rng(seed).integers(1, 2**63)], np.uint64)
        self.stats = np.zeros(2)

    def new_epoch(self) -> None:
        self.stats[:] = 0

    def train(self, ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, sched: np.ndarray,
              rng: np.random.Generator, tick: Callable[[float], None]) -> None:
        """Centre positions lo..hi-1 (windows and noise words from the kernel's own
        generator: ``rng`` and ``tick`` are the batched engine's)."""
        self.fn(self.w_in, self.w_out, ids, sent, lo, hi, self.window, self.negative, self.keep, self.alias,
                sched, self.state, self.stats)

    def loss(self) -> tuple[float, int]:
        """(summed loss, pairs) of this epoch so far."""
        return float(self.stats[0]), int(self.stats[1])

    def vectors(self) -> np.ndarray:
        return np.ascontiguousarray(self.w_in[:, : self.dim])
