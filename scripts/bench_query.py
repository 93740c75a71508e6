#!/usr/bin/env python
"""Speed of explorer's query paths against references run in the same process.

Prints RATIOS ours / reference (<= 1.0: we are at least as fast); no timing assertions.
1. services.query.analogy (the whole query path) (3CosAdd, 3CosMul) vs gensim most_similar[_cosmul] on the same matrix.
2. Batched top-10, SearchIndex.search (auto/numpy/faiss) vs numpy matmul + argpartition.
3. ``explorer --help`` vs ``python -c pass``; 4. ``explorer query`` wall time + import probe.

    python scripts/bench_query.py [--root DIR] [--model NAME] [--repeat N] [--batches 1,64,4096] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchtools import best_of
from explorer.services import query as query_service
from explorer.services.engine import Engine
from explorer.services.query import QueryOptions, SetChoice
from explorer.paths import default_root
from explorer.core.numeric import unit_rows
from explorer.store.connections import catalog_file

EXPR = "woman - man + king"
K = 10
REF_CHUNK = 1024  # reference queries per block: 4096 at once would need 4 GiB scores + 8 GiB argpartition ids
BIG_BATCH = 1024  # batches at least this large use --repeat-large and no extra warm-up
HEAVY = ("torch", "transformers", "textual")
WATCH = (*HEAVY, "faiss")
HELP_REPEAT, CLI_QUERY_REPEAT = 5, 3
HELP_TARGET_S, CLI_QUERY_TARGET_S = 0.3, 2.0

PROBE = r"""
import contextlib, io, json, sys
root, expr, WATCH = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
from explorer.cli.main import main
at_import = sorted(m for m in WATCH if m in sys.modules)
sys.argv = ["explorer", "--root", root, "query", expr, "--model", sys.argv[4]]
buf, code = io.StringIO(), 0
with contextlib.redirect_stdout(buf):
    try: main()
    except SystemExit as exc: code = exc.code or 0
after = sorted(m for m in WATCH if m in sys.modules)
print(json.dumps({"code": code, "at_import": at_import, "after_query": after, "answered": "queen" in buf.getvalue()}))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def row(section, case, ours, ref=None, check="", note=""):
    return {"section": section, "case": case, "ours_s": ours, "ref_s": ref,
            "ratio": (ours / ref) if ref else None, "check": check, "note": note}


# -- 1. analogies vs gensim ----------------------------------------------------------------
def bench_analogy(engine, s, repeat: int) -> list[dict]:
    from gensim.models import KeyedVectors

    from explorer.query import analogy
    from explorer.query.parse import parse

    ids = {w: engine.resolve(s, w).token_ids for w in ("woman", "man", "king")}
    assert all(len(t) == 1 for t in ids.values()), ids
    keys = [str(i) for i in range(s.vectors.n_rows)]  # key = token id, except the three inputs
    for word, (tid,) in ids.items():
        keys[tid] = word
    kv = KeyedVectors(s.vectors.dim)
    kv.vectors = s.vectors.vectors  # the same memory-mapped matrix the engine scores
    kv.index_to_key, kv.key_to_index, kv.next_index = keys, {k: i for i, k in enumerate(keys)}, len(keys)
    kv.fill_norms()  # one-time norms, not timed (ours are precomputed on disk)
    terms = [(engine.resolve(s, t.word), t.weight) for t in parse(EXPR).terms]
    log(f"analogy: ids {', '.join(f'{w}={t[0]}' for w, t in ids.items())}")
    rows = []
    for method, ref_fn in (("3cosadd", kv.most_similar), ("3cosmul", kv.most_similar_cosmul)):
        options = QueryOptions(SetChoice(s.model.name), k=K, method=method)
        b = best_of({"ours": lambda: query_service.analogy(engine, EXPR, options),
                     "core": lambda: analogy.run_query(s.vectors, terms, method=method, k=K),
                     "ref": lambda: ref_fn(positive=["woman", "king"], negative=["man"], topn=K)}, repeat, warmup=1)
        (t_ours, _, res), (t_core, _, core), (t_ref, _, got) = b["ours"], b["core"], b["ref"]
        ours_ids = [h.token_id for h in res.results]
        ref_ids = [kv.key_to_index[key] for key, _ in got]
        same = "same order" if ours_ids == ref_ids else ("same set" if set(ours_ids) == set(ref_ids) else "DIFFER")
        log(f"  {method}: ours {ours_ids}\n  {' ' * len(method)}  gensim {ref_ids}")
        held = catalog_file(engine.catalog.path).reader is not None  # a reader left open would lock writers out
        rows.append(row("analogy", f"analogy() {method}", t_ours, t_ref,
                        f"top-{K} {same}; catalog {'HELD OPEN' if held else 'closed'} between queries",
                        "incl. parse, word resolution, labels (catalog reads remembered until the file changes)"))
        same_core = "same" if [h.token_id for h in core.results] == ours_ids else "DIFFER"
        rows.append(row("analogy", f"run_query {method} (pre-resolved)", t_core, t_ref, f"top-{K} {same_core}",
                        "scoring only: no parse/resolve/labels"))
    return rows


# -- 2. batched top-k ------------------------------------------------------------------------
def reference_topk(un: np.ndarray, queries: np.ndarray, k: int):
    """numpy matmul + argpartition, then sort the k; chunked over queries (REF_CHUNK)."""
    qn = unit_rows(queries)
    out_s, out_i = [], []
    for a in range(0, len(qn), REF_CHUNK):
        scores = qn[a : a + REF_CHUNK] @ un.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        val = np.take_along_axis(scores, top, 1)
        order = np.argsort(-val, axis=1, kind="stable")
        out_s.append(np.take_along_axis(val, order, 1))
        out_i.append(np.take_along_axis(top, order, 1))
    return np.concatenate(out_s), np.concatenate(out_i)


def agreement(un, queries, ids, ref_s, ref_i, tol=1e-5) -> str:
    """Exact id-set matches, plus sets that differ only by ties at the k-th score."""
    exact = sum(set(a) == set(b) for a, b in zip(ids.tolist(), ref_i.tolist()))
    true = np.einsum("qkd,qd->qk", un[ids], unit_rows(queries))
    distinct = np.array([len(set(r)) == len(r) for r in ids.tolist()])
    valid = int(((true.min(1) >= ref_s[:, -1] - tol) & distinct).sum())
    n = len(ids)
    return f"{exact}/{n} sets" + (f" (+{valid - exact} ties)" if valid > exact else "") + ("" if valid == n else " BAD")


def bench_batches(root, s, batches: list[int], repeat: int, repeat_large: int) -> tuple[list[dict], str]:
    from explorer.store.index import FAISS_BLAS_WORK

    model = s.model.name
    indexes = {"auto": s.index, "numpy": Engine(root, backend="numpy").open_set(model).index,
               "faiss": Engine(root, backend="faiss").open_set(model).index}
    rng = np.random.default_rng(0)
    q_all = s.vectors.rows(rng.choice(s.vectors.n_rows, max(batches), replace=False))
    for idx in indexes.values():  # load the FAISS file and warm the page cache outside the timings
        idx.search(q_all[:1], K)
    log("batched: normalising the matrix into RAM for the reference ...")
    un = unit_rows(s.vectors.vectors)
    rows, faster = [], {}
    for nq in batches:
        q = q_all[:nq]
        r, w = (repeat_large, 0) if nq >= BIG_BATCH else (repeat, 1)
        chunk = f"; reference chunked in blocks of {REF_CHUNK} queries" if nq > REF_CHUNK else ""
        log(f"batched: {nq} queries (best of {r}{chunk}) ...")
        fns = {"ref": lambda: reference_topk(un, q, K)}
        fns.update({name: (lambda idx=idx: idx.search(q, K)) for name, idx in indexes.items()})
        b = best_of(fns, r, w)
        t_ref, (ref_s, ref_i) = b["ref"].wall, b["ref"].result
        times, picked = {name: b[name].wall for name in indexes}, indexes["auto"].choose(nq, False)
        for name in ("numpy", "faiss", "auto"):
            case = f"search nq={nq} {name}" + (f" (picked {picked})" if name == "auto" else "")
            rows.append(row("batched", case, times[name], t_ref, agreement(un, q, b[name].result.ids, ref_s, ref_i),
                            "ref: matmul+argpartition" + chunk))
        faster[nq] = (min(("numpy", "faiss"), key=times.get), times[picked] > 1.1 * min(times["numpy"], times["faiss"]))
    wrong = [nq for nq, (_, slow) in faster.items() if slow]
    summary = (f"auto picks FAISS from {-(-FAISS_BLAS_WORK // s.vectors.dim)} queries: faster backend by batch "
               + ", ".join(f"{nq}:{b}" for nq, (b, _) in faster.items())
               + ("; auto's pick was never >10% slower than the other" if not wrong
                  else f"; auto's pick was >10% slower than the other at nq={wrong}"))
    return rows, summary


# -- 3./4. command line ---------------------------------------------------------------------
def command(cmd: list[str]):
    def once():
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")

    return once


def bench_cli(root: Path, model: str) -> list[dict]:
    exe = Path(sys.executable).with_name("explorer")
    explorer = [str(exe)] if exe.exists() else [sys.executable, "-m", "explorer"]
    log("cli: --help, query, import probe ...")
    b = best_of({"help": command(explorer + ["--help"]), "pass": command([sys.executable, "-c", "pass"])}, HELP_REPEAT, warmup=1)
    t_help, t_pass = b["help"].wall, b["pass"].wall
    diff = t_help - t_pass
    rows = [row("cli", f"explorer --help (best of {HELP_REPEAT})", t_help, t_pass,
                f"+{diff:.3f} s {'ok' if diff <= HELP_TARGET_S else 'OVER'} (target <= {HELP_TARGET_S} s)",
                "ref: python -c pass")]
    t_query = best_of({"q": command(explorer + ["--root", str(root), "query", EXPR, "--model", model])}, CLI_QUERY_REPEAT, warmup=1)["q"].wall
    rows.append(row("cli", f"explorer query (best of {CLI_QUERY_REPEAT})", t_query, None,
                    f"{'ok' if t_query < CLI_QUERY_TARGET_S else 'OVER'} (target < {CLI_QUERY_TARGET_S} s)"))
    p = subprocess.run([sys.executable, "-c", PROBE, str(root), EXPR, ",".join(WATCH), model], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"import probe failed: {p.stderr.strip()[-500:]}")
    probe = json.loads(p.stdout.strip().splitlines()[-1])
    heavy = [m for m in probe["after_query"] if m in HEAVY]
    check = ("no torch/transformers/textual" if not heavy else f"IMPORTED {','.join(heavy)}") + (
        "; faiss loaded" if "faiss" in probe["after_query"] else "; no faiss") + (
        "" if probe["code"] == 0 and probe["answered"] else f" (query exit {probe['code']})")
    rows.append(row("cli", "in-process cli query: sys.modules", None, None, check,
                    f"at import: {probe['at_import']}, after query: {probe['after_query']}"))
    return rows


# -- output ---------------------------------------------------------------------------------
def fmt_s(t) -> str:
    return "-" if t is None else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.3f} s"


def print_table(meta: dict, rows: list[dict], notes: list[str]) -> None:
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    head = ("case", "ours", "reference", "ratio", "check")
    body = [(r["case"], fmt_s(r["ours_s"]), fmt_s(r["ref_s"]),
             f"{r['ratio']:.2f}" if r["ratio"] is not None else "-", r["check"]) for r in rows]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(head) + "\n" + "  ".join("-" * w for w in widths))
    for i, (r, cells) in enumerate(zip(rows, body)):
        if i and r["section"] != rows[i - 1]["section"]:
            print()
        print(line(cells))
    print("\n".join(f"* {n}" for n in notes))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=default_root(), help="data root (default: %(default)s)")
    ap.add_argument("--model", default=None, help="model name in the catalog (default: the default model)")
    ap.add_argument("--repeat", type=int, default=5, help="best of N timed runs (default 5)")
    ap.add_argument("--repeat-large", type=int, default=1, help=f"best of N for batches >= {BIG_BATCH} (default 1)")
    ap.add_argument("--batches", default="1,64,4096", help="query batch sizes (default 1,64,4096)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: analogy,batched,cli")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    skip, batches = set(filter(None, args.skip.split(","))), [int(b) for b in args.batches.split(",")]
    import faiss

    engine = Engine(args.root)  # no catalog session: the catalog is closed between queries, as in any process
    s = engine.open_set(args.model)
    meta = {"set": s.label, "shape": f"{s.vectors.n_rows}x{s.vectors.dim}", "cpus": os.cpu_count(),
            "faiss_threads": faiss.omp_get_max_threads(), "repeat": args.repeat, "repeat_large": args.repeat_large}
    rows, notes = [], ["ratio = ours / reference; <= 1.00 means ours is at least as fast"]
    if "analogy" not in skip:
        rows += bench_analogy(engine, s, args.repeat)
    if "batched" not in skip:
        batch_rows, summary = bench_batches(args.root, s, batches, args.repeat, args.repeat_large)
        threshold = faiss.cvar.distance_compute_blas_threshold  # FAISS: BLAS iff nq * d >= threshold
        rows += batch_rows
        notes += [summary, f"FAISS IndexFlatIP uses BLAS only when nq*d >= {threshold}, i.e. nq >= "
                  f"{-(-threshold // s.vectors.dim)} here; smaller batches take its per-query path"]
        if max(batches) > REF_CHUNK:
            notes.append(f"batched reference is chunked over queries in blocks of {REF_CHUNK} "
                         f"({max(batches)} at once: {max(batches) * s.vectors.n_rows * 4 / 2**30:.0f} GiB of scores "
                         f"+ {max(batches) * s.vectors.n_rows * 8 / 2**30:.0f} GiB of argpartition ids)")
    if "cli" not in skip:
        rows += bench_cli(args.root, s.model.name)
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows, "notes": notes}, indent=2))
    else:
        print_table(meta, rows, notes)


if __name__ == "__main__":
    main()
