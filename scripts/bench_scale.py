#!/usr/bin/env python
"""How the cost of hidden-state search grows with the number of stored states.

For n = 10k, 100k, 1M rows at d = 640 (``--sizes``) and each kind (exact, and the
compressed ``sq8`` / ``ivfpq`` of ``explorer states-index``, built with its defaults):
build time, bytes held in memory, query time for 1 and 64 queries (best of ``--repeat``),
and recall@10 on held-out queries, which are drawn like the rows but are not in the index
(``self_hits`` counts queries whose exact best cosine is 1, i.e. found in the index: 0).
The growth exponent of each cost in n is the least-squares slope of log(cost) on log(n).

Vectors: ``scripts/statemodel.py`` (its docstring says how rows are made), fitted to a
stored corpus's layer (``--root``, ``--corpus``, ``--layer``; BOS states left out), or
the built-in model fitted once to the bundled sample when no corpus is stored. The fit is
checked: mean cosine of random pairs and top-1 / top-10 variance shares of the synthetic
rows against the real ones (``vectors`` in ``--json``). Rows are written to a temporary
.npy and memory-mapped, as the store does; the exact reference scans it in blocks.

Bytes: exact = the float32 rows it scans (n x d x 4); compressed = the serialized FAISS
index (codes, ids, centroids, codebooks) + the n float32 norms the exact re-ranking
divides by (the float rows it reads stay on disk). No timing assertions anywhere.

    python scripts/bench_scale.py [--root DIR] [--corpus C] [--layer 9] [--sizes 10000,100000,1000000]
                                  [--kinds exact,sq8,ivfpq] [--queries 200] [--sweep] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads cost 3-5x on a shared machine

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtools import best_of  # noqa: E402
from statemodel import BUILTIN, builtin, fit, pair_stats  # noqa: E402

from explorer.core.numeric import unit_rows  # noqa: E402
from explorer.errors import ExplorerError  # noqa: E402
from explorer.query.topk import topk_dense  # noqa: E402
from explorer.store import compressed  # noqa: E402
from explorer.store.index import SearchIndex, faiss_module  # noqa: E402
from explorer.store.vectorset import VectorSet, row_norms  # noqa: E402

K = 10
BLOCK = 65536
MIN_FIT_ROWS = 1000  # a stored layer with fewer states (BOS left out) falls back to the built-in model
SWEEP = {"nprobe": (16, 32, 64, 128, 256), "refine": (8, 16, 32)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_model(root: str | None, corpus: str | None, layer: int, seed: int):
    """(StateModel, the real layer's rows sampled for the check, or None)."""
    try:
        from explorer.paths import default_root
        from explorer.services.engine import Engine
        from explorer.services.states import open_layer
        from explorer.store.states import StateStore

        engine = Engine(Path(root) if root else default_root())
        _, c, vs = open_layer(engine, None, corpus, layer)
        store = StateStore(engine.catalog)
        pos, tok = np.array(store.positions(c.corpus_id)), np.array(store.token_ids(c.corpus_id))
        if (pos > 0).sum() < MIN_FIT_ROWS:
            raise ExplorerError(f"corpus {c.name} has {(pos > 0).sum()} states after position 0 (< {MIN_FIT_ROWS})")
        model = fit(vs.vectors, pos, tok, f"fitted to corpus {c.name!r} layer {layer} ({engine.root})", seed)
        real = np.asarray(vs.vectors[np.flatnonzero(pos > 0)[:20_000]], dtype=np.float32)
        return model, real
    except (ExplorerError, OSError) as exc:
        log(f"no stored layer to fit ({exc}); using the built-in model")
        return builtin(seed), None


def check_fit(model, real, seed: int) -> dict:
    """The synthetic rows' mean cosine and variance shares next to the real layer's."""
    rows = model.sampler(20_000, seed)(20_000, np.random.default_rng(seed + 1))
    out = {**model.describe(), "synthetic": pair_stats(rows, rows.mean(axis=0), seed)}
    if real is not None:
        out["real"] = pair_stats(real, real.mean(axis=0), seed)
    elif model.source.startswith("built-in"):
        out["real"] = dict(BUILTIN["measured"])  # the sample's layer 9, measured when the constants were fitted
    return out


def write_rows(model, n: int, n_queries: int, directory: Path, seed: int) -> tuple[VectorSet, np.ndarray]:
    """n rows into a memory-mapped .npy (block by block, seeded per block) and
    ``n_queries`` held-out rows drawn from the same model with their own seed."""
    draw = model.sampler(n, seed)
    path = directory / "rows.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, model.dim))
    for b, start in enumerate(range(0, n, BLOCK)):
        m = min(BLOCK, n - start)
        out[start : start + m] = draw(m, np.random.default_rng([seed, 1, b]))
    out.flush()
    del out
    queries = draw(n_queries, np.random.default_rng([seed, 2]))
    vectors = np.load(path, mmap_mode="r")
    return VectorSet(directory, vectors, row_norms(vectors)), queries


def exact_truth(vs: VectorSet, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k cosines of each query, a block of rows at a time (never n x queries)."""
    q = unit_rows(queries).astype(np.float32)
    best = np.full((len(q), 0), -np.inf, dtype=np.float32)
    for start in range(0, vs.n_rows, BLOCK):
        scores = vs.cosines(q, slice(start, start + BLOCK)).T.astype(np.float32)
        best = topk_dense(np.concatenate([best, scores], axis=1), k)[0]
    return best


def recall(hits, truth: np.ndarray) -> float:
    kth = truth[:, K - 1]
    found = (hits.scores[:, :K] >= kth[:, None] - 1e-6) & (hits.ids[:, :K] >= 0)
    return float(found.sum(axis=1).mean() / K)


def time_queries(search, queries: np.ndarray, repeat: int) -> dict:
    """Best wall ms for one query and for a batch of 64, and CPU ms for one (on a shared
    machine, the work done)."""
    one, batch = queries[:1], queries[:64]
    best = best_of({"1": lambda: search(one), "64": lambda: search(batch)}, repeat, warmup=1)
    return {"query_ms": best["1"].wall * 1e3, "query64_ms": best["64"].wall * 1e3, "query_cpu_ms": best["1"].cpu * 1e3}


def bench_exact(vs: VectorSet, queries: np.ndarray, truth: np.ndarray, repeat: int) -> dict:
    index = SearchIndex(vs, None, "numpy")
    times = time_queries(lambda q: index.search(q, K), queries, repeat)
    return {"kind": "exact", "recall_at_10": recall(index.search(queries[:16], K), truth[:16]), **times,
            "bytes": vs.n_rows * vs.dim * 4, "build_s": 0.0, "params": {"backend": "numpy"}}


def bench_kind(vs: VectorSet, kind: str, queries: np.ndarray, truth: np.ndarray, repeat: int, sweep: bool) -> dict:
    faiss = faiss_module()
    t0 = time.perf_counter()
    index, params = compressed.build(vs, kind)
    build_s = time.perf_counter() - t0
    search = lambda q: compressed.search_compressed(index, kind, vs, q, K)  # noqa: E731
    times = time_queries(search, queries, repeat)
    size = int(faiss.serialize_index(index).size) + 4 * vs.n_rows
    row = {"kind": kind, "recall_at_10": recall(search(queries), truth), **times, "bytes": size, "build_s": build_s,
           "params": params}
    if sweep and kind == "ivfpq":
        row["sweep"] = sweep_ivfpq(index, vs, queries, truth)
        index.nprobe = params["nprobe"]
    return row


def sweep_ivfpq(index, vs: VectorSet, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Recall and single-query time over nprobe x refine, on the index already built."""
    out = []
    for nprobe in (p for p in SWEEP["nprobe"] if p <= index.nlist):
        index.nprobe = nprobe
        for refine in SWEEP["refine"]:
            search = lambda q: compressed.search_compressed(index, "ivfpq", vs, q, K, refine=refine)  # noqa: E731
            ms = best_of({"1": lambda: search(queries[:1])}, 3, warmup=1)["1"].wall * 1e3
            out.append({"nprobe": nprobe, "refine": refine, "recall_at_10": recall(search(queries), truth), "query_ms": ms})
    return out


def bench_size(model, n: int, kinds: list[str], args, tmp: Path) -> list[dict]:
    directory = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=tmp))
    try:
        t0 = time.perf_counter()
        vs, queries = write_rows(model, n, min(args.queries, max(1, n // 10)), directory, args.seed)
        log(f"n={n:,}: rows written in {time.perf_counter() - t0:.1f} s")
        truth = exact_truth(vs, queries, K)
        self_hits = int((truth[:, 0] >= 1 - 1e-6).sum())
        out = []
        for kind in kinds:
            t0 = time.perf_counter()
            r = bench_exact(vs, queries, truth, args.repeat) if kind == "exact" else bench_kind(
                vs, kind, queries, truth, args.repeat, args.sweep)
            out.append({"n": n, **r, "held_out_queries": len(queries), "self_hits": self_hits})
            log(f"n={n:,} {kind}: recall@10 {r['recall_at_10']:.3f}, {r['query_ms']:.2f} ms/query "
                f"({time.perf_counter() - t0:.1f} s)")
        ref = next((r for r in out if r["kind"] == "exact"), None)
        for r in out:
            r["float32_bytes"] = n * vs.dim * 4
            r["exact_query_ms"] = ref["query_ms"] if ref else None
            r["exact_query_cpu_ms"] = ref["query_cpu_ms"] if ref else None
        del vs
        return out
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def exponents(rows: list[dict]) -> dict:
    """Per kind and cost, the slope of log(cost) on log(n) (None with fewer than 2 sizes)."""
    out = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        out[kind] = {}
        for cost in ("build_s", "bytes", "query_ms", "query64_ms", "query_cpu_ms"):
            pts = [(r["n"], r[cost]) for r in mine if r[cost] and r[cost] > 0]
            ok = len({n for n, _ in pts}) >= 2
            out[kind][cost] = float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0]) if ok else None
    return out


def print_table(out: dict) -> None:
    print(f"vectors: {out['vectors']['source']}")
    for side in ("real", "synthetic"):
        if side in out["vectors"]:
            s = out["vectors"][side]
            print(f"  {side:9}: mean cos {s['mean_cos_raw']:.3f}, top-1 share {s['top1_share']:.3f}, "
                  f"top-10 share {s['top10_share']:.3f}")
    print(f"{'n':>9} {'kind':6} {'recall@10':>9} {'1 q ms':>9} {'64 q ms':>9} {'x exact':>8} {'x bytes':>8} {'build s':>8}")
    for r in out["rows"]:
        speed = r["query_ms"] / r["exact_query_ms"] if r["exact_query_ms"] else float("nan")
        print(f"{r['n']:>9,} {r['kind']:6} {r['recall_at_10']:>9.3f} {r['query_ms']:>9.2f} {r['query64_ms']:>9.1f} "
              f"{speed:>8.3f} {r['bytes'] / r['float32_bytes']:>8.3f} {r['build_s']:>8.1f}")
    print("growth exponents in n (log-log slope):")
    for kind, e in out["exponents"].items():
        print(f"  {kind:6} " + ", ".join(f"{c} {v:.2f}" for c, v in e.items() if v is not None))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="store to fit the vectors to (default: the usual root; none: built-in model)")
    ap.add_argument("--corpus", help="stored corpus (default: the latest)")
    ap.add_argument("--layer", type=int, default=9)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--kinds", default="exact,sq8,ivfpq")
    ap.add_argument("--queries", type=int, default=200, help="held-out queries (at most n/10)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="also sweep ivfpq's nprobe x refine")
    ap.add_argument("--builtin", action="store_true", help="use the built-in model even if a corpus is stored")
    ap.add_argument("--fit-only", action="store_true", help="print the fitted model and its check, then stop")
    ap.add_argument("--tmp", help="directory for the temporary row files (default: the system's)")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    model, real = (builtin(args.seed), None) if args.builtin else load_model(args.root, args.corpus, args.layer, args.seed)
    out = {"vectors": check_fit(model, real, args.seed), "k": K}
    if args.fit_only:
        out["model"] = {"var": model.var.tolist(), "resid": model.resid}
        print(json.dumps(out, indent=1))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.tmp) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows += bench_size(model, n, kinds, args, Path(tmp))
    out.update(rows=rows, exponents=exponents(rows), cores=faiss_module().omp_get_max_threads())
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print_table(out)


if __name__ == "__main__":
    main()
