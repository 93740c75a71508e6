#!/usr/bin/env python
"""Speed of the experiments' training loops against plain PyTorch loops, same process.

Counting (Yehudai et al. 2024): N training steps through ``EXPERIMENT.run`` with a null
context (metrics, progress and cancel checks go nowhere) versus a hand-written loop on the
same model (``build_counter``), the same batches (``sample_batch``, same generator seed), the
same Adam and the same final test-set evaluation. Both do identical arithmetic, so their
final accuracies must agree exactly. Prints steps/s of each and the ratio ours / plain
(target >= 0.9). Runs alternate, best of ``--repeat``.

    python scripts/bench_experiments.py [--steps 300] [--repeat 3] [--device cpu] [--d 8] [--m 8]

word2vec: our skip-gram (explorer.experiments.word2vec) against gensim's Word2Vec on the
same corpus, settings (sg=1, negative 5, window 5, dim 100, min_count, sample, epochs) and
thread count, alternating rounds, best of each; words/s = raw corpus words x epochs /
training wall time. Also timed: skip-gram with ``shared_negatives`` (one negative set per
centre word, Ji et al. 2016), which is not gensim's algorithm. Prints the ratio ours/gensim.

    python scripts/bench_experiments.py --only word2vec [--corpus FILE] [--epochs 5] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchtools import best_of
from explorer.experiments import counting
from explorer.experiments.base import RunContext, apply


def plain_counting(cfg: counting.Config, seed: int, device: str) -> float:
    """The reference: a bare training loop on the experiment's model and data; test accuracy."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = counting.build_counter(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    test_gen = torch.Generator(device=device).manual_seed(counting.TEST_SEED_OFFSET + cfg.seed)
    test_x, test_y = counting.sample_batch(cfg, cfg.test_samples, test_gen, device)
    for _ in range(cfg.steps):
        x, y = counting.sample_batch(cfg, cfg.batch, gen, device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        chunk = max(16, 65536 // test_x.shape[1])
        correct = sum(int((model(test_x[i:i + chunk]).argmax(1) == test_y[i:i + chunk]).sum())
                      for i in range(0, len(test_x), chunk))
    return correct / len(test_x)


def bench_counting(steps: int = 300, repeat: int = 3, device: str = "cpu", d: int = 8, m: int = 8,
                   quiet: bool = False) -> dict:
    """Time ``steps`` counting training steps, ours (EXPERIMENT.run) vs plain; print and return."""
    cfg = apply(counting.Config(), {"d": d, "m": m, "steps": steps, "eval_every": steps})
    seed = 0
    ctx = RunContext(0, seed=seed, device=device, threads=1)
    best = best_of({
        "ours": lambda: counting.EXPERIMENT.run(cfg, ctx).summary["accuracy"],
        "plain": lambda: plain_counting(cfg, seed, device),
    }, repeat, sync=torch.cuda.synchronize if torch.cuda.is_available() else None)
    ours_sps, plain_sps = steps / best["ours"][0], steps / best["plain"][0]
    cpu_ratio = best["plain"][1] / best["ours"][1]
    out = {"steps": steps, "d": d, "m": m, "n": counting.seq_len(cfg), "batch": cfg.batch, "device": device,
           "ours_steps_per_s": ours_sps, "plain_steps_per_s": plain_sps, "ratio": ours_sps / plain_sps,
           "cpu_time_ratio": cpu_ratio, "same_accuracy": best["ours"][2] == best["plain"][2],
           "accuracy": best["ours"][2]}
    if not quiet:
        print(f"counting (d={d}, m={m}, n={out['n']}, batch={cfg.batch}, {steps} steps, {device}):\n"
              f"  ours  {ours_sps:8.1f} steps/s   ({steps / best['ours'][1]:.1f} per CPU second)\n"
              f"  plain {plain_sps:8.1f} steps/s   ({steps / best['plain'][1]:.1f} per CPU second)\n"
              f"  ratio ours/plain {out['ratio']:.3f} wall, {cpu_ratio:.3f} CPU time (target >= 0.9); "
              f"same final accuracy: {out['same_accuracy']} ({best['ours'][2]:.4f})")
    return out


# -- word2vec against gensim --------------------------------------------------
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("counting", "word2vec"), default=None, help="run one part (default: both)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--corpus", default="")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object {counting, word2vec} instead of text")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    if args.only in (None, "counting"):
        out["counting"] = bench_counting(args.steps, args.repeat, args.device, args.d, args.m, quiet=args.json)
    if args.only in (None, "word2vec"):
        out["word2vec"] = bench_word2vec(args.corpus, args.epochs, args.threads, args.rounds, args.min_count,
                                         quiet=args.json)
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
