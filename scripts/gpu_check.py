"""Check the FAISS GPU path of explorer.store.index on a machine with a GPU.

Needs numpy and faiss (with GPU support) only. Builds a random 262,144 x 640 set (the
default model's shape), then compares backend auto (FAISS on the GPU when
faiss.get_num_gpus() > 0) with the exact numpy backend: agreement of top-10 ids, and
time per batch. Prints one JSON line per batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.store import index as index_mod  # noqa: E402
from explorer.store.vectorset import VectorSet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=262144)
    ap.add_argument("--dim", type=int, default=640)
    ap.add_argument("--batches", default="1,64,4096")
    args = ap.parse_args()
    import faiss

    print(json.dumps({"faiss": faiss.__version__, "gpus": index_mod.gpu_count()}), flush=True)
    rng = np.random.default_rng(0)
    m = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        VectorSet.write(d, m)
        vs = VectorSet.open(d)
        index_mod.build_index(vs, d / "index.faiss")
        auto = index_mod.SearchIndex(vs, d / "index.faiss", "auto")
        exact = index_mod.SearchIndex(vs, d / "index.faiss", "numpy")
        for nq in map(int, args.batches.split(",")):
            q = m[rng.integers(0, args.rows, nq)] + 0.1 * rng.standard_normal((nq, args.dim), dtype=np.float32)
            backend = auto.choose(nq, False)
            auto.search(q, 10)  # warm-up: index load (and GPU transfer) happens once
            t = time.perf_counter()
            a = auto.search(q, 10)
            t_auto = time.perf_counter() - t
            t = time.perf_counter()
            e = exact.search(q, 10)
            t_exact = time.perf_counter() - t
            agree = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.ids, e.ids)]))
            print(json.dumps({
                "queries": nq, "auto_backend": backend, "on_gpu": auto._on_gpu, "auto_s": round(t_auto, 4),
                "numpy_s": round(t_exact, 4), "ratio_auto_over_numpy": round(t_auto / t_exact, 4),
                "top10_agreement": agree, "max_score_diff": float(np.abs(a.scores - e.scores).max()),
            }), flush=True)
            allowed = np.zeros(args.rows, bool)
            allowed[::7] = True
            f = auto.search(q[:8], 10, allowed=allowed)
            assert np.all(f.ids % 7 == 0), "filter ignored"


if __name__ == "__main__":
    main()
