#!/usr/bin/env python
"""Our word2vec skip-gram (explorer.experiments.word2vec) against gensim's Word2Vec.

Same corpus, same tokens, same settings (sg=1, negative 5, window 5, dim 100, min_count,
sample, epochs) and the same thread count (gensim ``workers=threads``, torch
``set_num_threads(threads)``), in this process, alternating ``rounds`` times; the best
round of each counts. Also timed: our skip-gram with ``shared_negatives`` (one negative
set per centre word, Ji et al. 2016), which is not gensim's algorithm. Words/s = raw corpus words x epochs / training wall time (vocabulary
building excluded for both). Prints the RATIO ours / gensim (>= 1.0: we are at least as
fast) and the models' analogy accuracy and word-pair correlations (scored by
explorer.query.evaluate, which equals gensim's own evaluation).

    python scripts/bench_word2vec_part.py [--corpus FILE] [--epochs 5] [--threads 1] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

import numpy as np


def _ours(config: Any, sentences: list[list[str]], seed: int) -> tuple[float, list[str], np.ndarray]:
    """Our skip-gram (fresh negatives per pair, as word2vec.c)."""
    from explorer.experiments.base import RunContext
    from explorer.experiments.word2vec import build_vocab, encode, train

    vocab = build_vocab(sentences, config.min_count)
    ids, sent = encode(sentences, vocab.words)
    raw = sum(len(s) for s in sentences)
    matrix, stats = train(config, vocab, ids, sent, raw, RunContext(0, seed))
    return stats["seconds"], vocab.words, matrix


def _ours_shared(config: Any, sentences: list[list[str]], seed: int) -> tuple[float, list[str], np.ndarray]:
    """Our skip-gram with one negative set per centre word (``shared_negatives``)."""
    return _ours(replace(config, shared_negatives=True), sentences, seed)


def _gensim(config: Any, sentences: list[list[str]], seed: int) -> tuple[float, list[str], np.ndarray]:
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=config.dim, window=config.window, negative=config.negative, sg=1, hs=0,
                     min_count=config.min_count, sample=config.sample, workers=config.threads, seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.epochs)
    return time.perf_counter() - start, list(model.wv.index_to_key), model.wv.vectors


def _quality(words: list[str], matrix: np.ndarray) -> dict[str, Any]:
    from explorer.query.evaluate import evaluate_files

    return evaluate_files(words, matrix)


def bench_word2vec(corpus: str = "", epochs: int = 5, threads: int = 1, rounds: int = 3, min_count: int = 5,
                   sample: float = 1e-3, seed: int = 1, quiet: bool = False) -> dict[str, Any]:
    """Train both on ``corpus`` (default: gensim's lee_background.cor) and compare words/s."""
    import torch

    from explorer.experiments.word2vec import Config, read_sentences

    torch.set_num_threads(threads)
    config = replace(Config(), corpus=corpus, arch="sg", dim=100, window=5, negative=5, epochs=epochs,
                     min_count=min_count, sample=sample, threads=threads)
    sentences = read_sentences(corpus)
    raw = sum(len(s) for s in sentences) * epochs
    best: dict[str, tuple[float, list[str], np.ndarray]] = {}
    for _ in range(rounds):
        for name, fn in (("ours", _ours), ("gensim", _gensim), ("ours_shared", _ours_shared)):
            got = fn(config, sentences, seed)
            if name not in best or got[0] < best[name][0]:
                best[name] = got
    out: dict[str, Any] = {"corpus": corpus or "lee_background", "raw_words": raw // epochs, "epochs": epochs,
                           "threads": threads, "rounds": rounds}
    for name, (seconds, words, matrix) in best.items():
        out[name] = {"words_per_s": raw / seconds, "seconds": seconds, "vocab": len(words), **_quality(words, matrix)}
    out["ratio"] = out["ours"]["words_per_s"] / out["gensim"]["words_per_s"]
    out["ratio_shared"] = out["ours_shared"]["words_per_s"] / out["gensim"]["words_per_s"]
    if not quiet:
        _print(out)
    return out


def _print(out: dict[str, Any]) -> None:
    print(f"word2vec skip-gram on {out['corpus']} ({out['raw_words']:,} words x {out['epochs']} epochs, "
          f"{out['threads']} thread(s), best of {out['rounds']})")
    for name in ("ours", "ours_shared", "gensim"):
        r = out[name]
        line = f"  {name:11s} {r['words_per_s']:>11,.0f} words/s  ({r['seconds']:.2f} s, vocab {r['vocab']})"
        if "analogy" in r:
            a = r["analogy"]
            line += f"  analogies {a['accuracy']:.1%} of {a['questions']}"
        for pairs in ("wordsim353", "simlex999"):
            if "spearman" in r.get(pairs, {}):
                line += f"  {pairs} ρ {r[pairs]['spearman']:.3f}"
        print(line)
    print(f"  RATIO ours/gensim words/s: {out['ratio']:.2f} (shared negatives: {out['ratio_shared']:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    out = bench_word2vec(a.corpus, a.epochs, a.threads, a.rounds, a.min_count, quiet=a.json)
    if a.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
