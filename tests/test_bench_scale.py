"""``scripts/bench_scale.py`` at toy sizes: it runs to the end, prints the rows it promises,
measures recall with queries that are not in the index, and its synthetic rows reproduce
the anisotropy they were fitted to. Speed is reported by the script, never asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
ROW_KEYS = {"n", "kind", "recall_at_10", "held_out_queries", "query_ms", "exact_query_ms", "bytes", "float32_bytes",
            "build_s"}


def run_bench(*args: str) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPTS / "bench_scale.py"), *args, "--json"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    return run_bench("--builtin", "--sizes", "2000,4000", "--queries", "50", "--repeat", "1", "--sweep",
                     "--tmp", str(tmp_path_factory.mktemp("rows")))


def test_rows_and_recall(toy):
    rows = toy["rows"]
    assert [(r["n"], r["kind"]) for r in rows] == [(n, k) for n in (2000, 4000) for k in ("exact", "sq8", "ivfpq")]
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert 0.0 <= r["recall_at_10"] <= 1.0
        assert r["held_out_queries"] == 50 and r["self_hits"] == 0  # no query is a row of the index
        assert r["float32_bytes"] == r["n"] * 640 * 4 and r["bytes"] > 0
        assert math.isfinite(r["query_ms"]) and r["query_ms"] > 0 and r["exact_query_ms"] > 0
    exact = [r for r in rows if r["kind"] == "exact"]
    assert all(r["recall_at_10"] == 1.0 for r in exact)  # the blocked reference agrees with SearchIndex
    ivfpq = [r for r in rows if r["kind"] == "ivfpq"]
    assert all(r["bytes"] < 0.25 * r["float32_bytes"] for r in ivfpq)
    assert all(r["recall_at_10"] > 0.5 for r in rows)  # re-ranked candidates: far above chance (10/n)


def test_sweep_and_exponents(toy):
    sweep = [r for r in toy["rows"] if r["kind"] == "ivfpq"][0]["sweep"]
    assert sweep and all(0.0 <= s["recall_at_10"] <= 1.0 for s in sweep)
    deepest = max(sweep, key=lambda s: (s["nprobe"], s["refine"]))
    shallowest = min(sweep, key=lambda s: (s["nprobe"], s["refine"]))
    assert deepest["recall_at_10"] >= shallowest["recall_at_10"]
    exps = toy["exponents"]
    assert set(exps) == {"exact", "sq8", "ivfpq"}
    assert 0.9 < exps["exact"]["bytes"] < 1.1  # n x d x 4: linear in n by construction
    assert all(v is None or math.isfinite(v) for e in exps.values() for v in e.values())


def test_synthetic_rows_match_their_model(toy):
    v = toy["vectors"]
    assert "built-in" in v["source"] and v["dim"] == 640
    syn, real = v["synthetic"], v["real"]
    assert 0.8 < syn["mean_cos_raw"] < 0.99  # anisotropic like a middle layer, not isotropic noise (~0)
    assert abs(syn["mean_cos_raw"] - real["mean_cos_raw"]) < 0.01  # the layer the constants were fitted to
    assert abs(syn["top1_share"] - real["top1_share"]) < 0.02 and abs(syn["top10_share"] - real["top10_share"]) < 0.02
    assert abs(syn["top10_share"] - v["top10_share"]) < 0.05


def test_fit_reproduces_a_stored_layer(tmp_path):
    """Fitted to rows with a known mean, spectrum and tokens, the model samples rows with
    the same mean cosine and variance shares."""
    sys.path.insert(0, str(SCRIPTS))
    from statemodel import fit, pair_stats

    rng = np.random.default_rng(0)
    d, n = 64, 6000
    scales = np.linspace(3.0, 0.2, d)
    tokens = rng.integers(0, 300, n)
    centres = rng.standard_normal((300, d)) * scales
    real = (5.0 + centres[tokens] + 0.5 * rng.standard_normal((n, d)) * scales).astype(np.float32)
    positions = np.arange(n) % 20
    real[positions == 0] *= 15  # BOS outliers: must be left out of the fit
    model = fit(real, positions, tokens, "test")
    keep = real[positions > 0]
    want = pair_stats(keep, keep.mean(axis=0))
    rows = model.sampler(n, 1)(n, np.random.default_rng(2))
    got = pair_stats(rows, rows.mean(axis=0))
    assert abs(got["mean_cos_raw"] - want["mean_cos_raw"]) < 0.02
    assert abs(got["top1_share"] - want["top1_share"]) < 0.03
    assert 0.1 < model.within < 0.4  # noise variance 0.25 / 1.25 of each dimension's
