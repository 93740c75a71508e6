#!/usr/bin/env python
"""Speed of the experiments' training loops against plain PyTorch loops, same process.

Counting (Yehudai et al. 2024): N training steps through ``EXPERIMENT.run`` with a null
context (metrics, progress and cancel checks go nowhere) versus a hand-written loop on the
same model (``build_counter``), the same batches (``sample_batch``, same generator seed), the
same Adam and the same final test-set evaluation. Both do identical arithmetic, so their
final accuracies must agree exactly. Prints steps/s of each and the ratio ours / plain
(target >= 0.9). Runs alternate, best of ``--repeat``.

    python scripts/bench_experiments.py [--steps 300] [--repeat 3] [--device cpu] [--d 8] [--m 8]

word2vec: our skip-gram (explorer.experiments.word2vec, kernel=auto: the numba per-pair
kernel when numba is installed) against gensim's Word2Vec on the same corpus, settings
(sg=1, negative 5, window 5, dim 100, min_count, sample, epochs) and thread count, rounds
round-robin with seeds seed..seed+rounds-1, words/s from each one's best round (raw corpus
words x epochs / training wall time). Also timed: the batched torch kernel (the fallback
without numba, same algorithm) and its ``shared_negatives`` variant (one negative set per
centre word, Ji et al. 2016; not gensim's algorithm). The numba kernel compiles into a fresh
cache directory in its first round: ``ratio_first_run`` counts that compile in ours'
first-round words/s against gensim's first round, ``ratio_first_run_cached`` counts instead
the time a new process takes to load the compiled code from that cache. Quality: gensim's
analogy and word-pair scores, averaged over the rounds (seeds). Prints the ratios ours/gensim.

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
# ours: kernel=auto (numba when installed); ours_batched: the torch fallback, same algorithm;
# ours_shared: the batched kernel with one negative set per centre word (not gensim's algorithm)
CONTENDERS = {"ours": {}, "gensim": None, "ours_batched": {"kernel": "batched"},
              "ours_shared": {"kernel": "batched", "shared_negatives": True}}


def _ours(config: Any, sentences: list[list[str]], seed: int) -> dict[str, Any]:
    """Our skip-gram through ``word2vec.train`` (fresh negatives per pair, as word2vec.c
    unless ``shared_negatives``); seconds = its training clock (no compile)."""
    from explorer.experiments.base import RunContext
    from explorer.experiments.word2vec import build_vocab, encode, train

    vocab = build_vocab(sentences, config.min_count)
    ids, sent = encode(sentences, vocab.words)
    raw = sum(len(s) for s in sentences)
    matrix, stats = train(config, vocab, ids, sent, raw, RunContext(0, seed))
    return {"seconds": stats["seconds"], "compile_s": stats["compile_s"], "kernel": stats["kernel"],
            "words": vocab.words, "matrix": matrix}


def _gensim(config: Any, sentences: list[list[str]], seed: int) -> dict[str, Any]:
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=config.dim, window=config.window, negative=config.negative, sg=1, hs=0,
                     min_count=config.min_count, sample=config.sample, workers=config.threads, seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.epochs)
    return {"seconds": time.perf_counter() - start, "compile_s": 0.0, "kernel": "gensim",
            "words": list(model.wv.index_to_key), "matrix": model.wv.vectors}


def _quality(words: list[str], matrix: np.ndarray) -> dict[str, Any]:
    from explorer.query.evaluate import evaluate_files

    return evaluate_files(words, matrix)


def _scores(q: dict[str, Any]) -> dict[str, float]:
    """Analogy accuracy and word-pair Spearmans of one evaluation (those that were found)."""
    out = {"analogy": q["analogy"]["accuracy"]} if "accuracy" in q.get("analogy", {}) else {}
    out.update({k: q[k]["spearman"] for k in ("wordsim353", "simlex999") if "spearman" in q.get(k, {})})
    return out


def _cache_load_s(cache_dir: str) -> float | None:
    """Seconds a fresh process takes to load the compiled kernels from ``cache_dir``."""
    import os
    import subprocess
    import sys

    code = "from explorer.experiments.w2v_kernel import compile_kernels; print(compile_kernels(False))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": cache_dir})
    return float(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.strip() else None


def bench_word2vec(corpus: str = "", epochs: int = 5, threads: int = 1, rounds: int = 3, min_count: int = 5,
                   sample: float = 1e-3, seed: int = 1, quiet: bool = False) -> dict[str, Any]:
    """Train each contender ``rounds`` times on ``corpus`` (default: gensim's
    lee_background.cor), round-robin, seeds seed..seed+rounds-1; words/s from the best
    round, quality averaged over the rounds. The numba kernel compiles into a fresh cache
    directory on its first round: that round's words/s counting the compile is reported
    as ``first_run``, as is the time a new process takes to load the compiled code."""
    import os
    import shutil
    import sys
    import tempfile

    import torch

    from explorer.experiments.word2vec import Config, read_sentences

    cache_dir = tempfile.mkdtemp(prefix="w2v-bench-numba-")
    cold = "numba" not in sys.modules  # numba reads NUMBA_CACHE_DIR when imported
    os.environ["NUMBA_CACHE_DIR"] = cache_dir  # so the first round compiles from scratch
    torch.set_num_threads(threads)
    config = replace(Config(), corpus=corpus, arch="sg", dim=100, window=5, negative=5, epochs=epochs,
                     min_count=min_count, sample=sample, threads=threads)
    sentences = read_sentences(corpus)
    raw = sum(len(s) for s in sentences) * epochs
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    for r in range(rounds):
        for name, settings in CONTENDERS.items():
            fn = _gensim if settings is None else _ours
            got = fn(replace(config, **(settings or {})), sentences, seed + r)
            got["vocab"] = len(got["words"])
            got["quality"] = _quality(got.pop("words"), got.pop("matrix"))
            runs[name].append(got)
    out: dict[str, Any] = {"corpus": corpus or "lee_background", "raw_words": raw // epochs, "epochs": epochs,
                           "threads": threads, "rounds": rounds, "seeds": [seed, seed + rounds - 1], "cold_compile": cold}
    for name, rs in runs.items():
        best = min(rs, key=lambda x: x["seconds"])
        scores = [_scores(x["quality"]) for x in rs]
        out[name] = {"kernel": best["kernel"], "words_per_s": raw / best["seconds"], "seconds": best["seconds"],
                     "first_run_words_per_s": raw / (rs[0]["seconds"] + rs[0]["compile_s"]),
                     "compile_s": rs[0]["compile_s"], "vocab": rs[0]["vocab"],
                     "quality_mean": {k: float(np.mean([s[k] for s in scores])) for k in scores[0]},
                     **best["quality"]}
    _ratios(out, raw, cache_dir)
    shutil.rmtree(cache_dir, ignore_errors=True)
    if not quiet:
        _print(out)
    return out


def _ratios(out: dict[str, Any], raw: int, cache_dir: str) -> None:
    """Each of ours against gensim: warm (training clocks, best rounds), and first run
    (first rounds; ours incl. compiling cold, and incl. loading from a warm cache)."""
    g = out["gensim"]
    out["ratio"] = out["ours"]["words_per_s"] / g["words_per_s"]
    out["ratio_batched"] = out["ours_batched"]["words_per_s"] / g["words_per_s"]
    out["ratio_shared"] = out["ours_shared"]["words_per_s"] / g["words_per_s"]
    out["ratio_first_run"] = out["ours"]["first_run_words_per_s"] / g["first_run_words_per_s"]
    if out["ours"]["kernel"] == "numba":
        load = _cache_load_s(cache_dir)
        out["ours"]["cache_load_s"] = load
        first = raw / out["ours"]["first_run_words_per_s"] - out["ours"]["compile_s"]  # its training seconds
        if load is not None:
            out["ratio_first_run_cached"] = raw / (first + load) / g["first_run_words_per_s"]


def _print(out: dict[str, Any]) -> None:
    print(f"word2vec skip-gram on {out['corpus']} ({out['raw_words']:,} words x {out['epochs']} epochs, "
          f"{out['threads']} thread(s), best of {out['rounds']} rounds, seeds {out['seeds'][0]}..{out['seeds'][1]})")
    for name in ("ours", "ours_batched", "ours_shared", "gensim"):
        r = out[name]
        line = f"  {name:12s} {r['kernel']:8s} {r['words_per_s']:>11,.0f} words/s  ({r['seconds']:.2f} s)"
        q = r["quality_mean"]
        line += "".join(f"  {k} {v:.3f}" for k, v in q.items()) + " (mean of rounds)"
        print(line)
    o = out["ours"]
    if o["kernel"] == "numba":
        load = o.get("cache_load_s")
        print(f"  numba kernel: compiled in {o['compile_s']:.2f} s on its first round"
              + ("" if out["cold_compile"] else " (numba was imported before: maybe from an old cache)")
              + (f", loaded from the disk cache in {load:.2f} s by a new process" if load is not None else ""))
    print(f"  RATIO ours/gensim words/s: {out['ratio']:.2f} (batched kernel {out['ratio_batched']:.2f}, "
          f"shared negatives {out['ratio_shared']:.2f})")
    print(f"  first run ours/gensim incl. compiling: {out['ratio_first_run']:.2f}"
          + (f", incl. loading from the cache: {out['ratio_first_run_cached']:.2f}" if "ratio_first_run_cached" in out else ""))


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
