"""word2vec from scratch: skip-gram and CBOW with negative sampling (Mikolov et al. 2013).

Written without gensim; it follows word2vec.c / gensim where that matters:

* **Corpus.** One sentence per line, lowercased, split on anything but letters
  (:func:`word_tokens`). ``corpus=""`` (or ``"lee"``): gensim's test corpus
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
  context input vectors against the centre, its whole error added to each context vector
  (word2vec.c; gensim's default ``cbow_mean=1``).
* **Negatives.** ``negative`` noise words per positive from unigram^0.75 (batched:
  word2vec.c's table, up to 2e7 slots; numba: the exact distribution, by Walker's alias
  method), fresh for every pair; a noise word equal to the positive is skipped. ``shared_negatives`` (sg, batched kernel only; not gensim's algorithm) draws one
  set per centre word for all its context words, as pWord2Vec (Ji et al. 2016).
* **Updates.** SGD on the logistic loss, ``lr`` decaying linearly to 1e-4 with the words
  processed (``lr = 0``: 0.025 for sg, 0.05 for CBOW). Input vectors start uniform in
  ``±0.5/dim``, output vectors at zero.
* **Kernels.** ``kernel=numba`` (:mod:`explorer.experiments.w2v_kernel`; the ``fast``
  extra, ``pip install 'explorer[fast]'``): word2vec.c's loop, one pair at a time on one
  thread (``batch`` and ``threads`` have no effect), its sigmoid table included; compiled
  on first use and cached on disk. ``kernel=batched``
  (:mod:`explorer.experiments.w2v_batched`): torch on any device, ``batch`` shuffled pairs
  (CBOW / shared negatives: centre words) per step, rows gathered with ``index_select``,
  scored with ``bmm``, gradients scattered with ``index_add_`` (a row seen k times in a
  batch gets the sum of k gradients taken at the batch's start); ``threads`` torch threads.
  ``kernel=auto``: numba when it imports and the run is on the CPU, else batched.

The run returns the input vectors as a vector set ``name`` (default
``w2v-<arch>-<corpus stem>``) and a summary: the kernel that ran, words/s (raw corpus words
incl. those under ``min_count``, times epochs, over the training wall time: gensim's raw
words), ``compile_s`` (numba: compiling or loading the kernel, before the training clock
starts; batched: 0), vocabulary size, the last epoch's mean loss per positive pair (incl.
its negatives), and gensim's analogy and word-pair scores when the files are found
(:mod:`explorer.query.evaluate`; ``analogies="-"`` / ``pairs="-"`` skip them).
``arch="sg,cbow"`` sweeps both.

Smoke preset: sg on the default corpus, dim 50, 1 epoch (about a second on one core).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import ExplorerError
from explorer.experiments import rules
from explorer.experiments.base import RunContext, RunOutput, Summary, TrainedVectors
from explorer.query.evaluate import evaluate_files, gensim_test_file

MIN_LR = 1e-4  # the learning rate decays linearly to this (gensim's min_alpha)
KERNELS = ("auto", "numba", "batched")
FAST_EXTRA = "pip install 'explorer[fast]'"
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
    shared_negatives: bool = False  # sg, batched: one negative set per centre word for all its contexts (Ji et al.)
    kernel: str = "auto"  # "numba" (per-pair, one thread; the fast extra) | "batched" (torch) | "auto": numba if it imports, on CPU
    seed: int = 1
    threads: int = 1  # batched: torch threads (small batched ops gain little from more, and lose much on busy cores); 0 = the runner's
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


def initial_vectors(rows: int, dim: int, seed: int) -> np.ndarray:
    """Input vectors at the start: uniform in +-0.5/dim (word2vec.c), float32."""
    rng = np.random.default_rng([seed, 1])  # a stream apart from the run's subsampling
    return ((rng.random((rows, dim), dtype=np.float32) - 0.5) / dim).astype(np.float32)


# -- kernels and the training loop -----------------------------------------------------


def numba_problem() -> str | None:
    """Why numba cannot be used (its import error's first line), or None."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        return (str(exc).strip().splitlines() or ["not installed"])[0]
    return None


def choose_kernel(config: Config, device: str, log: Callable[[str], None] | None = None) -> str:
    """The kernel that runs: ``config.kernel``, or for ``auto`` numba when it imports and
    the device is the CPU (and not ``shared_negatives``), else batched."""
    if config.kernel not in KERNELS:
        raise ExplorerError(f"kernel must be one of {', '.join(KERNELS)}, not {config.kernel!r}")
    if config.kernel == "batched" or (config.kernel == "auto" and (config.shared_negatives or device != "cpu")):
        return "batched"
    if config.shared_negatives:
        raise ExplorerError("shared_negatives needs kernel=batched (the numba kernel draws negatives per pair)")
    problem = numba_problem()
    if problem is None:
        return "numba"
    if config.kernel == "numba":
        raise ExplorerError(f"kernel=numba needs numba ({problem}): {FAST_EXTRA}")
    if log is not None and "No module named" not in problem:
        log(f"numba does not import ({problem}): the batched kernel runs")
    return "batched"


def train(config: Config, vocab: Vocab, ids: np.ndarray, sent: np.ndarray, raw_words: int,
          ctx: RunContext) -> tuple[np.ndarray, dict[str, Any]]:
    """Train; returns (input vectors, stats: kernel, compile_s, words_per_s, loss,
    seconds, pairs). The batched kernel uses ``config.threads`` torch threads, restoring
    the previous setting afterwards."""
    if config.arch not in ("sg", "cbow"):
        raise ExplorerError(f"arch must be sg or cbow, not {config.arch!r}")
    kernel = choose_kernel(config, ctx.device, ctx.log)
    init = initial_vectors(len(vocab.words), config.dim, ctx.seed)
    if kernel == "numba":
        from explorer.experiments.w2v_kernel import NumbaEngine

        engine = NumbaEngine(init, vocab.counts, config.arch == "cbow", config.window, config.negative, ctx.seed)
        return _train(config, vocab, ids, sent, raw_words, ctx, engine)
    from explorer.experiments.w2v_batched import BatchedEngine, torch_training

    with torch_training(config.threads):
        engine = BatchedEngine(init, noise_table(vocab.counts), config, ctx.seed, ctx.device)
        return _train(config, vocab, ids, sent, raw_words, ctx, engine)


def _mean(loss: tuple[float, int]) -> float:
    return loss[0] / max(1, loss[1])


def _train(config: Config, vocab: Vocab, ids: np.ndarray, sent: np.ndarray, raw_words: int,
           ctx: RunContext, engine: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The epochs: subsample, then the engine trains chunks of centre words (an engine:
    ``kernel``, ``chunk_words``, ``compile_s``, ``new_epoch()``, ``train(ids, sent, lo,
    hi, sched, rng, tick)``, ``loss()``, ``vectors()``)."""
    lr0 = config.lr or (0.025 if config.arch == "sg" else 0.05)
    rng = np.random.default_rng(ctx.seed)
    keep = keep_probability(vocab.counts, config.sample)
    total = raw_words * config.epochs
    start = last = time.perf_counter()
    pairs = 0

    def tick(done: float) -> None:
        nonlocal last
        if time.perf_counter() - last > REPORT_S:
            last = _report(ctx, done, total, _mean(engine.loss()), start)

    for epoch in range(config.epochs):
        engine.new_epoch()
        mask = rng.random(len(ids)) < keep[ids]
        e_ids, e_sent = ids[mask], sent[mask]
        # lr schedule: raw words done at centre position p = epoch start + p * per_word
        sched = np.array([lr0, MIN_LR, raw_words * epoch, raw_words / max(1, len(e_ids)), total], dtype=np.float64)
        for lo in range(0, len(e_ids), engine.chunk_words):
            hi = min(len(e_ids), lo + engine.chunk_words)
            engine.train(e_ids, e_sent, lo, hi, sched, rng, tick)
            tick(sched[2] + hi * sched[3])
        pairs += engine.loss()[1]
    seconds = time.perf_counter() - start
    loss = _mean(engine.loss())
    _report(ctx, total, total, loss, start)
    stats = {"kernel": engine.kernel, "compile_s": engine.compile_s, "words_per_s": total / seconds, "loss": loss,
             "seconds": seconds, "pairs": pairs}
    return engine.vectors(), stats


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
    choose_kernel(config, ctx.device)  # a kernel that cannot run fails before the corpus is read
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
    rows = [{**{k: s.get(k) for k in ("name", "arch", "kernel", "vocab", "words_per_s", "compile_s", "loss")},
             "analogy_accuracy": (s.get("analogy") or {}).get("accuracy"),
             "wordsim353_spearman": (s.get("wordsim353") or {}).get("spearman")} for _, s in finished]
    text = [f"{r['name']}: {r['arch']}, {r['kernel']} kernel, vocab {r['vocab']}, {r['words_per_s']:,.0f} words/s"
            + (f" (+ {r['compile_s']:.1f} s to compile or load the kernel)" if r["compile_s"] else "")
            + f", loss {r['loss']:.3f}"
            + (f", analogies {r['analogy_accuracy']:.1%}" if r["analogy_accuracy"] is not None else "")
            + (f", wordsim353 Spearman {r['wordsim353_spearman']:.3f}" if r["wordsim353_spearman"] is not None else "")
            for r in rows]
    return Summary({"runs": rows}, "\n".join(text))


class Word2VecExperiment:
    """word2vec (see the module docstring) as an experiment object."""

    name = "word2vec"
    description = "word2vec skip-gram / CBOW with negative sampling, trained from scratch (numba or torch)"
    Config, presets, rules = Config, PRESETS, rules.WORD2VEC
    points, run, summarize = staticmethod(points), staticmethod(run), staticmethod(summarize)


EXPERIMENT = Word2VecExperiment()
