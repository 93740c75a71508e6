"""Hidden-state export throughput against a bare forward pass, on the same batches.

Reference: tokenise each batch and run ``model(..., output_hidden_states=True)``, keeping
nothing. Ours: ``explorer export-states`` on the same documents, batch size and
truncation (hooks on every block, rows written in place and fsynced, metadata committed
to DuckDB per batch). Prints tokens/s for both and their ratio (ours / reference; the
target is >= 0.8), and bytes on disk per token against (layers + 1) x d x bytes.

    python scripts/bench_export.py [--root DIR] [--model gemma3-270m] [--docs 160] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--docs", type=int, default=160, help="documents from the bundled sample corpus")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from explorer.services.engine import Engine
    from explorer.models.loading import load_model
    from explorer.models.states import read_corpus, sample_corpus_path
    from explorer.services.states import export_states
    from explorer.store.states import StateStore

    engine = Engine(args.root)
    m = engine.model(args.model)
    docs = read_corpus(sample_corpus_path())[: args.docs]
    corpus = Path(tempfile.mkdtemp(prefix="bench_export_")) / f"sample_{args.docs}.tsv"
    corpus.write_text("lang\ttext\n" + "".join(f"{lang}\t{text}\n" for lang, text in docs))
    name = f"bench-export-{args.docs}"

    model, tok = load_model(Path(m.model_dir))
    tok.padding_side = "right"
    texts = [t for _, t in docs]
    model(**tok(texts[:2], return_tensors="pt", padding=True))  # warm-up

    def reference() -> tuple[float, int]:
        n_tok, t0 = 0, time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(texts), args.batch_size):
                enc = tok(texts[i : i + args.batch_size], return_tensors="pt", padding=True, truncation=True,
                          max_length=args.max_tokens)
                model(**enc, output_hidden_states=True, use_cache=False)
                n_tok += int(enc["attention_mask"].sum())
        return time.perf_counter() - t0, n_tok

    ref_s, ref_tokens = reference()
    rep = export_states(args.model, engine.root, corpus=corpus, name=name, dtype=args.dtype,
                        batch_size=args.batch_size, max_tokens=args.max_tokens, force=True)
    ref_s2, _ = reference()  # again after, to bracket machine noise
    ref_best = min(ref_s, ref_s2)
    ours_tps, ref_tps = rep.states / rep.seconds, ref_tokens / ref_best  # whole run (forwards, writes, commits)
    expected = rep.layers * rep.dim * (4 if args.dtype == "float32" else 2)
    out = {
        "model": m.name, "documents": len(texts), "tokens": rep.states, "reference_tokens": ref_tokens,
        "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "reference_tokens_per_s": round(ref_tps, 1), "ours_tokens_per_s": round(ours_tps, 1),
        "ratio_ours_over_reference": round(ours_tps / ref_tps, 3),
        "bytes_per_token": round(rep.bytes_per_token, 1), "expected_bytes_per_token": expected,
        "bytes_ratio": round(rep.bytes_per_token / expected, 5),
    }
    store = StateStore(engine.catalog)
    row = store.corpus(m.model_id, name)
    if row is not None:
        store.delete(row)
    shutil.rmtree(corpus.parent, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{m.name}: {len(texts)} documents, {rep.states:,} tokens, batch {args.batch_size}, {out['threads']} threads")
    print(f"  bare forward (output_hidden_states=True): {ref_tps:8.1f} tokens/s  (best of 2 runs bracketing ours)")
    print(f"  explorer export-states:                   {ours_tps:8.1f} tokens/s")
    print(f"  ratio ours / reference: {out['ratio_ours_over_reference']:.3f}   (target >= 0.8)")
    print(f"  bytes on disk per token: {rep.bytes_per_token:,.1f} vs (layers+1) x d x bytes = {expected:,}"
          f"  (ratio {out['bytes_ratio']:.5f}; target within 1%)")


if __name__ == "__main__":
    main()
