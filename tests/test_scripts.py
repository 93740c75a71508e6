"""Smoke runs of ``scripts/bench_*.py`` at toy sizes. Each script must run to the end, print
the JSON it promises and pass its own correctness checks (same top-k as the reference,
same accuracy, same probabilities). Speed is reported by the scripts, never asserted here.
A signature change once broke bench_lens without any test failing; these exist for that."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import first_model

from explorer.models.export import export_model
from explorer.store.catalog import Catalog

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def bench(name: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *args, "--json"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_bench_query(tiny_root):
    out = bench("bench_query.py", "--root", str(tiny_root), "--model", first_model(tiny_root), "--repeat", "1",
                "--batches", "1,8")
    assert out["meta"]["shape"] == "31x16"
    rows = {r["case"]: r for r in out["rows"]}
    analogy = [r for r in out["rows"] if r["section"] == "analogy"]
    assert len(analogy) == 4 and all("same" in r["check"] and "DIFFER" not in r["check"] for r in analogy)
    batched = [r for r in out["rows"] if r["section"] == "batched"]
    assert len(batched) == 6
    for r in batched:  # every backend returns the reference's top-10 sets
        m = re.match(r"(\d+)/(\d+) sets", r["check"])
        assert m and m[1] == m[2] and "BAD" not in r["check"], r
    assert all(positive(r["ratio"]) for r in analogy + batched)
    probe = rows["in-process cli query: sys.modules"]["check"]
    assert probe.startswith("no torch/transformers/textual") and "query exit" not in probe


def test_bench_export(tiny_model_dir, tmp_path):
    export_model(str(tiny_model_dir), tmp_path)  # a root of its own: the script adds and removes a corpus
    name = first_model(tmp_path)
    out = bench("bench_export.py", "--root", str(tmp_path), "--model", name, "--docs", "4", "--batch-size", "2")
    assert out["documents"] == 4 and out["tokens"] == out["reference_tokens"] > 0
    assert out["expected_bytes_per_token"] == 3 * 16 * 4  # (layers + 1) x d x float32
    assert out["bytes_per_token"] >= out["expected_bytes_per_token"]
    assert positive(out["ratio_ours_over_reference"])
    cat = Catalog(tmp_path)
    assert cat.query("SELECT count(*) FROM corpora")[0][0] == 0  # the bench cleans up after itself


def test_bench_experiments():
    out = bench("bench_experiments.py", "--steps", "5", "--repeat", "1", "--epochs", "1", "--rounds", "1")
    counting = out["counting"]
    assert counting["same_accuracy"] is True and 0.0 <= counting["accuracy"] <= 1.0
    assert positive(counting["ratio"])
    w2v = out["word2vec"]
    assert w2v["ours"]["vocab"] == w2v["gensim"]["vocab"] > 1000  # same corpus, same min_count
    assert positive(w2v["ratio"]) and positive(w2v["ratio_shared"])


def test_bench_tui(tiny_root):
    out = bench("bench_tui.py", "--root", str(tiny_root), "--repeat", "1")
    assert out["torch_imported"] is False
    assert positive(out["first_screen_s"]) and out["process_wall_s"] >= out["first_screen_s"]


@pytest.mark.slow
def test_bench_lens(gemma_root):
    out = bench("bench_lens.py", "--root", str(gemma_root), "--entries", "2", "--batch", "1")
    assert out["entries"] == 2
    assert out["max_abs_diff_p_target_last_layer"] < 1e-6  # ours decodes the same probabilities
    assert positive(out["time_ratio"]) and positive(out["peak_ratio"])
