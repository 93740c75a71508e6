"""Logit-lens cost: ours (last position only) against a plain all-positions reference.

Reference: ``softmax(lm_head(norm(h)))`` for every layer and every position of each
prompt (a layers x positions x vocabulary tensor), then the last position is read.
Ours: ``explorer.lens.attribution.attribute`` decodes only the last position of each prompt.
Both run on the same French->Chinese translation prompts, each in a fresh subprocess so
that peak memory (ru_maxrss) is not shared; the figures are ratios ours / reference
(target: <= 1.0 for both time and peak memory).

    python scripts/bench_lens.py [--root DIR] [--model NAME] [--entries 24] [--batch 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
from pathlib import Path
from explorer.services.engine import Engine
from explorer.lens import attribution
from explorer.lens.runner import ModelRunner
from explorer.lens.tasks import translation_items
from explorer.lens.words import TokenSets, load_words
from explorer.models.capture import capture, tokenize

engine = Engine({root!r})
m = engine.model({model!r}, auto_export=False)
run = ModelRunner(m)
texts = engine.open_set(m.name, "input", auto_export=False).tokens.texts()
vocab = TokenSets(texts, run.tokenizer)
items = translation_items(load_words(), "fr", "zh", 4, 0)[: {entries}]
kept, _ = attribution.select(items, vocab, "prefixes")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if {mode!r} == "ours":
    res = attribution.attribute(run, [k[0] for k in kept], vocab, task="translate", strategy="prefixes", config={{}},
                          labels=lambda ids: {{}}, batch_size={batch})
    p_last = [e["p_target"][-1] for e in res.per_entry]
else:
    p_last = []
    anat = run.anatomy
    with torch.inference_mode():
        for start in range(0, len(kept), {batch}):
            chunk = kept[start : start + {batch}]
            ids = tokenize(run.tokenizer, [k[0].prompt for k in chunk], 4096)
            cap = capture(run.model, anat, ids, run.tokenizer.pad_token_id or 0)
            hs = torch.stack(cap.layers)                          # (L+1, B, S, d)
            probs = torch.softmax(anat.unembed(anat.final_norm(hs)).float(), dim=-1)   # (L+1, B, S, V)
            for b, (it, tgt, eng, *_) in enumerate(chunk):
                p_last.append(float(probs[-1, b, len(ids[b]) - 1, sorted(tgt)].sum()))
            del probs, hs
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_rss_mb": peak / 1024, "extra_rss_mb": (peak - base) / 1024, "p_last": p_last}}))
"""


def child(mode: str, root: str | None, model: str | None, entries: int, batch: int) -> dict:
    code = CHILD.format(repo=str(ROOT), root=root, model=model, entries=entries, mode=mode, batch=batch)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed (exit {proc.returncode}; -9 is the kernel's out-of-memory kill): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None)
    ap.add_argument("--model", default=None, help="a model in the catalog (default: the default model)")
    ap.add_argument("--entries", type=int, default=24)
    ap.add_argument("--batch", type=int, default=2, help="prompts per forward pass (the reference holds "
                    "layers x batch x positions x vocabulary floats: ~1.6 GB at 2 for Gemma; 8 needs >24 GB)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ref = child("reference", args.root, args.model, args.entries, args.batch)
    ours = child("ours", args.root, args.model, args.entries, args.batch)
    same = max(abs(a - b) for a, b in zip(ref["p_last"], ours["p_last"]))
    out = {
        "entries": len(ours["p_last"]),
        "reference_s": round(ref["seconds"], 2), "ours_s": round(ours["seconds"], 2),
        "time_ratio": round(ours["seconds"] / ref["seconds"], 3),
        "reference_peak_mb": round(ref["peak_rss_mb"]), "ours_peak_mb": round(ours["peak_rss_mb"]),
        "peak_ratio": round(ours["peak_rss_mb"] / ref["peak_rss_mb"], 3),
        "reference_extra_mb": round(ref["extra_rss_mb"]), "ours_extra_mb": round(ours["extra_rss_mb"]),
        "max_abs_diff_p_target_last_layer": same,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['entries']} fr->zh prompts, {args.model or 'the default model'}")
    print(f"  time:        ours {out['ours_s']:.2f} s   reference {out['reference_s']:.2f} s   ratio {out['time_ratio']:.3f}")
    print(f"  peak memory: ours {out['ours_peak_mb']} MB  reference {out['reference_peak_mb']} MB  ratio {out['peak_ratio']:.3f}"
          f"  (above the loaded model: ours {out['ours_extra_mb']} MB, reference {out['reference_extra_mb']} MB)")
    print(f"  same numbers: max |p_target(last layer) difference| = {same:.2e}")


if __name__ == "__main__":
    main()
