"""End to end on the real default model, Gemma 3 270M (converted once, then cached)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.services.engine import Engine
from explorer.services.query import QueryOptions, analogy
from explorer.store.catalog import Catalog

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_catalog_describes_gemma(gemma_root):
    cat = Catalog(gemma_root)
    m = cat.model("gemma3-270m")
    assert (m.vocab_size, m.d_model, m.n_layers, m.tied) == (262144, 640, 18, True)
    assert m.embed_scale == pytest.approx(640**0.5, rel=1e-6)
    out = cat.vector_set(m.model_id, "output")
    assert out.same_as == cat.vector_set(m.model_id, "input").set_id  # tied: stored once
    scripts = dict(cat.query("SELECT script, count(*) FROM tokens GROUP BY script"))
    assert scripts["latin"] > 50_000 and scripts["cjk"] > 10_000 and scripts["cyrillic"] > 5_000
    assert cat.query("SELECT count(*) FROM tokens WHERE is_byte")[0][0] == 256


def test_woman_man_king_on_gemma(gemma_root):
    r = runner.invoke(app, ["--root", str(gemma_root), "query", "woman - man + king", "--expect", "queen", "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"][0]["token"] == " queen"
    assert out["expected"]["rank_excluded"] == 1
    # the offsets are far from parallel although the analogy "works": both facts shown
    assert 0.0 < out["diagnostics"]["offset_cosine"] < 0.6
    assert "reverse_cosine" in out["diagnostics"]
    kept = {i["word"]: i["rank_if_kept"] for i in out["inputs"]}
    assert kept["man"] > 1000 and kept["king"] <= 5


def test_engine_matches_gensim_on_gemma(gemma_root):
    gensim = pytest.importorskip("gensim")
    engine = Engine(gemma_root)
    s = engine.open_set()
    kv = gensim.models.KeyedVectors(640)
    kv.index_to_key = [str(i) for i in range(s.vectors.n_rows)]
    kv.key_to_index = {k: i for i, k in enumerate(kv.index_to_key)}
    kv.vectors = np.asarray(s.vectors.vectors)
    ids = {w: engine.resolve(s, w).token_ids[0] for w in ("woman", "man", "king", "Paris", "France", "Berlin")}
    for b, a, c in (("woman", "man", "king"), ("Paris", "France", "Berlin")):
        ours = analogy(engine, f"{b} - {a} + {c}", QueryOptions(k=10))
        theirs = kv.most_similar(positive=[str(ids[b]), str(ids[c])], negative=[str(ids[a])], topn=10)
        assert [h.token_id for h in ours.results] == [int(k) for k, _ in theirs]
        np.testing.assert_allclose([h.score for h in ours.results], [v for _, v in theirs], atol=1e-5)
        ours = analogy(engine, f"{b} - {a} + {c}", QueryOptions(k=10, method="3cosmul"))
        theirs = kv.most_similar_cosmul(positive=[str(ids[b]), str(ids[c])], negative=[str(ids[a])], topn=10)
        assert [h.token_id for h in ours.results] == [int(k) for k, _ in theirs]


def test_any_script_and_unknown_words(gemma_root):
    r = runner.invoke(app, ["--root", str(gemma_root), "query", '"花" - "flower" + "water"', "--json"])
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    # each quoted word resolves to its word-initial token ('▁花', decoded ' 花'), which Gemma's
    # vocabulary has for all three (next to the bare '花', 'flower', 'water'): ids from the catalog
    cat = Catalog(gemma_root)
    ids = dict(cat.query("SELECT raw, token_id FROM tokens WHERE raw IN ('▁花', '▁flower', '▁water')"))
    assert [(i["word"], i["token"], i["token_id"]) for i in res["inputs"]] == [
        ("花", " 花", ids["▁花"]), ("flower", " flower", ids["▁flower"]), ("water", " water", ids["▁water"])]
    assert "水" in [h["token"].strip() for h in res["results"][:5]]  # flower -> 花 as water -> 水
    bad = runner.invoke(app, ["--root", str(gemma_root), "query", "woman - man + kingg"])
    assert bad.exit_code != 0 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_cli_subprocess_is_fast_path(gemma_root):
    """The real console script, on an existing index: answers, and imports no torch."""
    code = (
        "import sys, runpy; sys.argv=['explorer','--root',%r,'query','woman - man + king','--json'];"
        "import explorer.cli.main as m\n"
        "try:\n    m.main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [x for x in ('torch','transformers','textual') if x in sys.modules], file=sys.stderr)"
    ) % str(gemma_root)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(proc.stdout)["results"][0]["token"] == " queen"
    assert "HEAVY []" in proc.stderr


PROMPT = 'Français: "fleur" - 中文: "花". Français: "montagne" - 中文: "山". Français: "eau" - 中文: "'


def test_hidden_states_on_gemma(gemma_root, model_cache):
    from explorer.services.states import export_states

    docs = ["The king lives in a large castle.", "Le roi habite un grand château.", "国王住在一座大城堡里。"]
    rep = export_states("gemma3-270m", gemma_root, prompts=docs, name="few")
    assert (rep.layers, rep.dim, rep.documents, rep.dtype) == (19, 640, 3, "float32")
    # one state per token of each document (BOS included), as the tokenizer counts them
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_cache / "gemma3-270m" / "tokenizer.json"))
    assert rep.states == sum(len(tok.encode(d).ids) for d in docs)
    # on disk a token costs exactly (layers + 1) x d x 4 bytes: each layer file is one
    # states x 640 float32 matrix; the reported figure adds only the .npy headers
    files = sorted((gemma_root / "states" / "gemma3-270m" / "few").glob("layer_??.npy"))
    assert [f.name for f in files] == [f"layer_{i:02d}.npy" for i in range(19)]
    headers = 0
    for f in files:
        m = np.load(f, mmap_mode="r")
        assert (m.shape, m.dtype) == ((rep.states, 640), np.float32)
        headers += f.stat().st_size - m.nbytes
    assert 0 < headers <= 19 * 4096
    assert rep.bytes_per_token == pytest.approx(19 * 640 * 4 + headers / rep.states, rel=1e-9)
    r = runner.invoke(app, ["--root", str(gemma_root), "neighbours", "--layer", "9", docs[1], "--corpus", "few", "--json"])
    assert r.exit_code == 0, r.stderr
    top = json.loads(r.stdout)["results"][0]
    assert top["document"] == 1 and top["score"] == pytest.approx(1.0, abs=1e-4)


def test_trajectory_passes_through_english(gemma_root):
    """Wendler et al.: a French->Chinese prompt decodes to English in the middle layers."""
    r = runner.invoke(app, ["--root", str(gemma_root), "trajectory", PROMPT, "-k", "5", "--json"])
    assert r.exit_code == 0, r.stderr
    layers = json.loads(r.stdout)["layers"]
    assert len(layers) == 19 and layers[0]["layer"] == 0
    assert layers[-1]["lens_top"][0]["token"] == "水"

    def p(layer, words):
        return sum(t["prob"] for t in layer["lens_top"] if t["token"].strip().lower() in words)

    middle = layers[9:18]
    assert any(p(v, {"water"}) > p(v, {"水"}) and p(v, {"water"}) > 0.2 for v in middle)


def test_lens_fr_to_zh_passes_through_english(gemma_root):
    """The quality bar of the lens: English leads in some middle layer, Chinese wins at the end."""
    r = runner.invoke(app, ["--root", str(gemma_root), "lens", "translate", "--from", "fr", "--to", "zh", "--limit", "48", "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    layers = out["layers"]
    assert out["entries"] >= 40 and len(layers) == 19
    middle = layers[6:17]
    assert any(v["p_english"] > v["p_target"] and v["p_english"] > 0.02 for v in middle)
    last = layers[-1]
    assert last["p_target"] > 0.15 and last["p_target"] > 10 * last["p_english"]
    assert out["accuracy"] > 0.3


def test_cloze_runs_on_gemma(gemma_root):
    r = runner.invoke(app, ["--root", str(gemma_root), "lens", "cloze", "--lang", "fr", "--limit", "8", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["entries"] >= 4
