"""Language attribution with the logit lens, on the tiny model (mechanics and exact numbers)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.errors import ExplorerError
from explorer.store.catalog import Catalog

runner = CliRunner()


@pytest.fixture(scope="module")
def words_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("words") / "words.csv"
    p.write_text("concept,en,zh,ru\nwater,water,水,королева\nflower,fire,花,король\nking,king,王,королева\n")
    return p


def invoke(root, *args):
    return runner.invoke(app, ["--root", str(root), *args])


def test_translate_json_and_record(tiny_root, words_csv, tmp_path):
    png = tmp_path / "lens.png"
    r = invoke(tiny_root, "lens", "translate", "--from", "zh", "--to", "en", "--model", "tiny-llama", "--words",
               str(words_csv), "--shots", "1", "--json", "--png", str(png))
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["entries"] >= 2 and 0.0 <= out["accuracy"] <= 1.0
    assert [v["layer"] for v in out["layers"]] == [0, 1, 2]
    for v in out["layers"]:
        assert set(v) >= {"layer", "p_target", "p_english", "entropy", "energy"}
        assert 0.0 <= v["p_target"] <= 1.0 and v["entropy"] >= 0 and v["energy"] > 0
    assert png.stat().st_size > 10_000
    cat = Catalog(tiny_root)
    runs = cat.query("SELECT run_id, task, entries FROM lens_runs ORDER BY run_id DESC LIMIT 1")
    (run_id, task, entries), = runs
    assert task == "translate" and entries == out["entries"]
    assert cat.query("SELECT count(*) FROM lens_layers WHERE run_id = ?", [run_id])[0][0] == 3
    assert cat.query("SELECT count(*) FROM lens_entries WHERE run_id = ?", [run_id])[0][0] == entries


def test_last_layer_matches_the_models_own_softmax(tiny_root, words_csv):
    """The lens at the last layer is the model's next-token distribution: check exactly."""
    from explorer.engine import Engine
    from explorer.lens import attribution
    from explorer.lens.runner import ModelRunner
    from explorer.lens.tasks import translation_items
    from explorer.lens.words import Vocabulary, load_words

    engine = Engine(tiny_root)
    m = engine.model("tiny-llama", auto_export=False)
    run = ModelRunner(m)
    texts = [t for (t,) in engine.catalog.query("SELECT text FROM tokens WHERE model_id = ? ORDER BY token_id", [m.model_id])]
    vocab = Vocabulary(texts, run.tokenizer)
    items = translation_items(load_words(words_csv), "ru", "zh", 1, 0)
    res = attribution.run(run, items, vocab, task="translate", strategy="prefixes", config={}, labels=lambda ids: {})
    kept, _ = attribution.select(items, vocab, "prefixes")
    for (it, tgt, eng, _), entry in zip(kept, res.per_entry):
        ids = run.tokenizer(it.prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            p = torch.softmax(run.model(ids).logits[0, -1], -1)
        assert entry["p_target"][-1] == pytest.approx(float(p[sorted(tgt)].sum()), abs=1e-5)
        assert entry["p_english"][-1] == pytest.approx(float(p[sorted(eng)].sum()), abs=1e-5)


def test_token_sets_and_selection(tiny_root):
    from explorer.lens.runner import ModelRunner
    from explorer.lens.words import Vocabulary
    from explorer.engine import Engine

    engine = Engine(tiny_root)
    m = engine.model("tiny-llama", auto_export=False)
    tok = ModelRunner(m).tokenizer
    texts = [t for (t,) in engine.catalog.query("SELECT text FROM tokens WHERE model_id = ? ORDER BY token_id", [m.model_id])]
    vocab = Vocabulary(texts, tok)
    ids = {t: i for i, t in enumerate(texts)}
    assert vocab.token_set("king", "prefixes") >= {ids["king"], ids[" king"]}
    assert vocab.token_set("kingdom", "prefixes") >= {ids["king"], ids[" king"]}  # prefixes of the word
    assert vocab.token_set("xyz", "single") == frozenset()  # ' xyz' is two tokens
    assert vocab.token_set("xyz", "first") == {ids[" xy"]}  # '<unk>' for the bare form does not count


def test_bad_input(tiny_root, tmp_path):
    r = invoke(tiny_root, "lens", "translate", "--from", "fr", "--to", "xx", "--model", "tiny-llama")
    assert r.exit_code != 0 and r.stderr.startswith("error: ") and "unknown language" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("concept,en,klingon\na,b,c\n")
    r = invoke(tiny_root, "lens", "repeat", "--lang", "en", "--model", "tiny-llama", "--words", str(bad))
    assert r.exit_code != 0 and "columns must be" in r.stderr


def test_missing_final_norm_is_named(tiny_root, words_csv):
    from dataclasses import replace

    from explorer.engine import Engine
    from explorer.lens import attribution
    from explorer.lens.runner import ModelRunner
    from explorer.lens.tasks import translation_items
    from explorer.lens.words import Vocabulary, load_words

    engine = Engine(tiny_root)
    m = engine.model("tiny-llama", auto_export=False)
    run = ModelRunner(m)
    run.anatomy = replace(run.anatomy, final_norm=None)
    texts = [t for (t,) in engine.catalog.query("SELECT text FROM tokens WHERE model_id = ? ORDER BY token_id", [m.model_id])]
    items = translation_items(load_words(words_csv), "ru", "zh", 1, 0)
    with pytest.raises(ExplorerError, match="no final norm"):
        attribution.run(run, items, Vocabulary(texts, run.tokenizer), task="t", strategy="prefixes", config={},
                        labels=lambda ids: {})
