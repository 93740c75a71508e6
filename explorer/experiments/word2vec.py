"""word2vec from scratch: skip-gram and CBOW with negative sampling (Mikolov et al. 2013).

Written in torch without gensim; it follows word2vec.c / gensim where that matters:

* **Corpus.** One sentence per line, lowercased, split on anything but letters
  (:func:`tokenize`). ``corpus=""`` (or ``"lee"``): gensim's test corpus
  ``lee_background.cor`` if gensim is installed, else (or ``"sample"``) the English lines
  of ``explorer/data/sample_corpus.tsv``. A ``.tsv`` with a ``text`` header column is read
  from that column.
* **Vocabulary.** Words seen ``min_count`` times, most frequent first (ties: first
  appearance), so row order = frequency order. Rarer words are dropped before windowing.
* **Subsampling.** Each epoch keeps a word of count ``c`` with probability
  ``(sqrt(c / (sample * N)) + 1) * sample * N / c`` (word2vec.c; ``N`` = in-vocabulary
  words; ``sample=0`` keeps all); windows are taken over the kept words.
* **Windows.** A reduced window uniform in ``1..window`` per centre word. Skip-gram trains
  (input = context word, output = centre word) pairs as word2vec.c; CBOW the mean of the
  context input vectors against the centre, its error divided by the number of context
  words (gensim's ``cbow_mean=1``).
* **Negatives.** ``negative`` noise words per positive from unigram^0.75 (word2vec.c's
  table, up to 2e7 slots), fresh for every pair; a noise word equal to the positive is
  skipped. ``shared_negatives`` (sg only; not gensim's algorithm) draws one set per
  centre word for all its context words, as pWord2Vec (Ji et al. 2016): a batch is then
  a few matrix products, about twice as fast.
* **Updates.** SGD on the logistic loss, ``lr`` decaying linearly to 1e-4 with the words
  processed (``lr = 0``: 0.025 for sg, 0.05 for CBOW). Instead of one pair at a time,
  ``batch`` shuffled pairs (CBOW / shared negatives: centre words) at once: rows
  gathered with ``index_select``, scored with ``bmm``, gradients scattered with
  ``index_add_`` (a row seen k times in a batch gets the sum of k gradients taken at the
  batch's start). Input vectors start uniform in ``±0.5/dim``, output vectors at zero.

The run returns the input vectors as a vector set ``name`` (default
``w2v-<arch>-<corpus stem>``) and a summary: words/s (raw corpus words incl. those under
``min_count``, times epochs, over the training wall time: gensim's raw words), vocabulary
size, the last epoch's mean loss per positive pair (incl. its negatives), and gensim's
analogy and word-pair scores when the files are found (:mod:`explorer.query.evaluate`;
``analogies="-"`` / ``pairs="-"`` skip them). ``arch="sg,cbow"`` sweeps both.

Smoke preset: sg on the default corpus, dim 50, 1 epoch (about a second on one core).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from explorer.errors import ExplorerError
from explorer.experiments import rules
from explorer.experiments.base import RunContext, RunOutput, Summary, TrainedVectors
from explorer.query.evaluate import evaluate_files, gensim_test_file

MIN_LR = 1e-4  # the learning rate decays linearly to this (gensim's min_alpha)
CHUNK = 200_000  # centre words whose pairs are generated and shuffled together
REPORT_S = 0.5  # seconds between metric/progress reports
TABLE_MIN, TABLE_MAX, TABLE_PER_WORD = 1_000_000, 20_000_000, 100  # noise table size (word2vec.c: 1e8)

_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Config:
    corpus: str = ""  # a file; "" or "lee": gensim's lee_background.cor ("": else "sample"); "sample": bundled English
    arch: str = "sg"  # "sg" | "cbow"; "sg,cbow" sweeps both
    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3  # subsampling threshold; 0 = off
    epochs: int = 5
    lr: float = 0.0  # starting learning rate; 0 = 0.025 (sg) / 0.05 (cbow)
    batch: int = 1024  # pairs (sg) or centre words (cbow, shared_negatives) per update
    shared_negatives: bool = False  # sg: one negative set per centre word for all its contexts (Ji et al.)
    seed: int = 1
    threads: int = 1  # torch threads (small batched ops gain little from more, and lose much on busy cores); 0 = the runner's
    name: str = ""  # model name of the vectors; "" = w2v-<arch>-<corpus stem>
    analogies: str = ""  # analogy file; "" = gensim's questions-words.txt if found; "-" = none
    pairs: str = ""  # word-pair files, comma-separated; "" = gensim's wordsim353 + simlex999; "-" = none


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"dim": 50, "epochs": 1, "min_count": 5, "analogies": "-"},
    "paper": {"dim": 100, "window": 5, "negative": 5, "epochs": 5, "sample": 1e-3, "min_count": 5},
}


# -- corpus ----------------------------------------------------------------------------


def word_tokens(line: str) -> list[str]:
    """Lowercased runs of letters: ``"Don't stop!"`` -> ``["don", "t", "stop"]``."""
    return _WORD.findall(line.lower())


def resolve_corpus(corpus: str) -> tuple[Path, str | None]:
    """(file, language filter) for a corpus setting (see :class:`Config`)."""
    lee = gensim_test_file("lee_background.cor") if corpus in ("", "lee") else None
    if lee is not None:
        return lee, None
    if corpus == "lee":
        raise ExplorerError("corpus 'lee' needs gensim's test data (pip install gensim)")
    if corpus in ("", "sample"):
        return Path(str(resources.files("explorer.data").joinpath("sample_corpus.tsv"))), "en"
    path = Path(corpus).expanduser()
    if not path.is_file():
        raise ExplorerError(f"corpus file not found: {path}")
    return path, None


def corpus_stem(corpus: str) -> str:
    """A model-name-safe short name of the corpus."""
    path, lang = resolve_corpus(corpus)
    stem = "sample-en" if lang else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "corpus"


def read_sentences(corpus: str) -> list[list[str]]:
    """Tokenised non-empty lines of the corpus (a ``text`` column for a TSV with a header)."""
    path, lang = resolve_corpus(corpus)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = lines[0].split("\t") if lines else []
    if path.suffix.lower() == ".tsv" and "text" in header:
        col, lcol = header.index("text"), header.index("lang") if "lang" in header else -1
        rows = [r.split("\t") for r in lines[1:]]
        lines = [r[col] for r in rows if len(r) > col and (lang is None or (lcol >= 0 and r[lcol] == lang))]
    return [s for s in (word_tokens(x) for x in lines) if s]


@dataclass(frozen=True)
class Vocab:
    words: list[str]  # most frequent first
    counts: np.ndarray  # int64, same order


def build_vocab(sentences: list[list[str]], min_count: int) -> Vocab:
    counts: dict[str, int] = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    first = {w: i for i, w in enumerate(counts)}  # dicts keep first-appearance order
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], first[w]))
    if not kept:
        raise ExplorerError(f"no word occurs at least min_count={min_count} times in the corpus")
    return Vocab(kept, np.array([counts[w] for w in kept], dtype=np.int64))


def encode(sentences: list[list[str]], words: list[str], keep_oov: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(word ids, sentence ids) in corpus order; words outside ``words`` are dropped
    (``keep_oov``: kept as -1)."""
    index = {w: i for i, w in enumerate(words)}
    ids = np.array([index.get(w, -1) for s in sentences for w in s], dtype=np.int64)
    sent = np.repeat(np.arange(len(sentences), dtype=np.int64), [len(s) for s in sentences])
    return (ids, sent) if keep_oov else (ids[ids >= 0], sent[ids >= 0])


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec.c's subsampling: probability of keeping each vocabulary word."""
    if sample <= 0:
        return np.ones(len(counts))
    t = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)


def noise_table(counts: np.ndarray) -> np.ndarray:
    """word2vec.c's unigram table: word i fills a share ~ count^0.75 of the int32 slots,
    so a uniform slot is a noise word (words with a share under one slot may get none)."""
    size = int(min(TABLE_MAX, max(TABLE_MIN, TABLE_PER_WORD * len(counts))))
    cum = np.cumsum(counts.astype(np.float64) ** 0.75)
    bounds = np.round(cum / cum[-1] * size).astype(np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int32), np.diff(bounds, prepend=0))


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

    def __init__(self, counts: np.ndarray, dim: int, negative: int, batch: int, width: int,
                 seed: int, device: str = "cpu"):
        import torch

        self.torch, self.device, self.negative = torch, device, negative
        self.gen = torch.Generator(device=device).manual_seed(seed)
        v, k1 = len(counts), negative + 1
        init = (torch.rand(v + 1, dim, generator=self.gen, device=device) - 0.5) / dim
        init[v] = 0  # padding row of context windows: never changes (its gradients are masked)
        self.w_in, self.w_out, self.pad = init, torch.zeros(v, dim, device=device), v
        self.table = torch.from_numpy(noise_table(counts)).to(device)
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
        gh = self._update(h, torch.ones_like(count[:, :, 0]), centres, lr).div_(count)
        self.w_in.index_add_(0, flat, torch.mul(gh, mask.unsqueeze(2), out=self.buf("h", b, c, d)).view(b * c, d))


# -- training loop ---------------------------------------------------------------------


def _rows(config: Config, ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, rng: np.random.Generator,
          pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (rows, width), centre words, inputs per row) of centres lo..hi-1."""
    if config.arch == "sg" and not config.shared_negatives:
        a, b = sg_pairs(ids, sent, lo, hi, config.window, rng)
        return a[:, None], b, np.ones(len(b), dtype=np.int64)
    return cbow_rows(ids, sent, lo, hi, config.window, rng, pad)


def train(config: Config, vocab: Vocab, ids: np.ndarray, sent: np.ndarray, raw_words: int,
          ctx: RunContext) -> tuple[np.ndarray, dict[str, float]]:
    """Train; returns (input vectors, stats: words_per_s, loss, seconds, pairs). Uses
    ``config.threads`` torch threads, restoring the previous setting afterwards."""
    import torch

    if config.arch not in ("sg", "cbow"):
        raise ExplorerError(f"arch must be sg or cbow, not {config.arch!r}")
    before = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        with torch.no_grad():
            return _train(config, vocab, ids, sent, raw_words, ctx)
    finally:
        torch.set_num_threads(before)


def _train(config: Config, vocab: Vocab, ids: np.ndarray, sent: np.ndarray, raw_words: int,
           ctx: RunContext) -> tuple[np.ndarray, dict[str, float]]:
    import torch

    lr0 = config.lr or (0.025 if config.arch == "sg" else 0.05)
    model = SGNS(vocab.counts, config.dim, config.negative, config.batch, 2 * config.window, ctx.seed, ctx.device)
    step = model.cbow_step if config.arch == "cbow" else model.window_step
    rng = np.random.default_rng(ctx.seed)
    keep = keep_probability(vocab.counts, config.sample)
    total = raw_words * config.epochs
    start = last = time.perf_counter()
    done, pairs = 0.0, 0
    for epoch in range(config.epochs):
        model.loss.zero_(), model.pairs.zero_()
        mask = rng.random(len(ids)) < keep[ids]
        e_ids, e_sent = ids[mask], sent[mask]
        for lo in range(0, len(e_ids), CHUNK):
            hi = min(len(e_ids), lo + CHUNK)
            a, b, width = _rows(config, e_ids, e_sent, lo, hi, rng, model.pad)
            per_row = (hi - lo) / len(e_ids) * raw_words / max(1, len(b))  # raw words a row stands for
            a, b = torch.from_numpy(a).to(ctx.device), torch.from_numpy(b).to(ctx.device)
            for s in rng.permutation(np.arange(0, len(b), config.batch)):
                lr = max(MIN_LR, lr0 - (lr0 - MIN_LR) * done / total)
                step(a[s : s + config.batch, : width[s]], b[s : s + config.batch], lr)
                done += min(config.batch, len(b) - s) * per_row
                if time.perf_counter() - last > REPORT_S:
                    last = _report(ctx, done, total, float(model.loss / model.pairs.clamp(min=1)), start)
        done, pairs = float(raw_words * (epoch + 1)), pairs + int(model.pairs)  # exact at epoch ends
    seconds = time.perf_counter() - start
    loss = float(model.loss / model.pairs.clamp(min=1))
    _report(ctx, total, total, loss, start)
    stats = {"words_per_s": total / seconds, "loss": loss, "seconds": seconds, "pairs": pairs}
    return model.w_in[:-1].cpu().numpy().astype(np.float32), stats


def _report(ctx: RunContext, done: float, total: int, loss: float, start: float) -> float:
    ctx.check()
    now = time.perf_counter()
    wps = done / max(now - start, 1e-9)
    ctx.metric(int(done), "loss", loss)
    ctx.metric(int(done), "words_per_s", wps)
    ctx.progress(int(done), total, loss=loss, words_per_s=wps)
    return now


# -- the experiment --------------------------------------------------------------------


def run(config: Config, ctx: RunContext) -> RunOutput:
    from explorer.store.interchange.encoding import check_model_name

    name = check_model_name(config.name or f"w2v-{config.arch}-{corpus_stem(config.corpus)}")
    sentences = read_sentences(config.corpus)
    vocab = build_vocab(sentences, config.min_count)
    ids, sent = encode(sentences, vocab.words)
    raw = sum(len(s) for s in sentences)
    ctx.log(f"{raw} words, {len(vocab.words)} in the vocabulary (min_count {config.min_count})")
    matrix, stats = train(config, vocab, ids, sent, raw, ctx)
    summary = {"arch": config.arch, "name": name, "vocab": len(vocab.words), "raw_words": raw, **stats,
               **evaluate_files(vocab.words, matrix, config.analogies, config.pairs)}
    note = f"word2vec {config.arch} dim {config.dim} window {config.window} negative {config.negative}, {config.epochs} epochs"
    return RunOutput(summary=summary, vectors=[TrainedVectors(name, vocab.words, matrix, note)])


def points(config: Config) -> list[dict[str, Any]]:
    archs = [a.strip() for a in config.arch.split(",") if a.strip()]
    if len(archs) <= 1:
        return [{}]
    return [{"arch": a, **({"name": f"{config.name}-{a}"} if config.name else {})} for a in archs]


def summarize(config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
    rows = [{**{k: s.get(k) for k in ("name", "arch", "vocab", "words_per_s", "loss")},
             "analogy_accuracy": (s.get("analogy") or {}).get("accuracy"),
             "wordsim353_spearman": (s.get("wordsim353") or {}).get("spearman")} for _, s in finished]
    text = [f"{r['name']}: {r['arch']}, vocab {r['vocab']}, {r['words_per_s']:,.0f} words/s, loss {r['loss']:.3f}"
            + (f", analogies {r['analogy_accuracy']:.1%}" if r["analogy_accuracy"] is not None else "")
            + (f", wordsim353 Spearman {r['wordsim353_spearman']:.3f}" if r["wordsim353_spearman"] is not None else "")
            for r in rows]
    return Summary({"runs": rows}, "\n".join(text))


class Word2VecExperiment:
    """word2vec (see the module docstring) as an experiment object."""

    name = "word2vec"
    description = "word2vec skip-gram / CBOW with negative sampling, trained from scratch in torch"
    Config, presets, rules = Config, PRESETS, rules.WORD2VEC
    points, run, summarize = staticmethod(points), staticmethod(run), staticmethod(summarize)


EXPERIMENT = Word2VecExperiment()
