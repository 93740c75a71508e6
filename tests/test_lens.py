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


@pytest.fixture
def tiny_lens(tiny_root):
    """(model runner, lens vocabulary, token texts in id order) of the tiny model."""
    from explorer.services.engine import Engine
    from explorer.lens.runner import ModelRunner
    from explorer.lens.words import TokenSets

    engine = Engine(tiny_root)
    s = engine.open_set("tiny-llama", "input", auto_export=False)
    run, texts = ModelRunner(s.model), s.tokens.texts()
    return run, TokenSets(texts, run.tokenizer), texts


def invoke(root, *args):
    return runner.invoke(app, ["--root", str(root), *args])


def test_translate_json_and_record(tiny_root, words_csv, tmp_path):
    png = tmp_path / "lens.png"
    r = invoke(tiny_root, "lens", "translate", "--from", "zh", "--to", "en", "--model", "tiny-llama", "--words",
               str(words_csv), "--shots", "1", "--json", "--png", str(png))
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["entries"] >= 2 and 0.0 <= out["accuracy_first"] <= out["accuracy"] <= 1.0
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
    assert cat.query("SELECT accuracy_first FROM lens_runs WHERE run_id = ?", [run_id])[0][0] == pytest.approx(out["accuracy_first"])
    assert cat.query("SELECT count(*) FROM lens_entries WHERE run_id = ? AND accepted[1] = target AND correct_first IS NOT NULL",
                     [run_id])[0][0] == entries


def test_last_layer_matches_the_models_own_softmax(tiny_lens, words_csv):
    """The lens at the last layer is the model's next-token distribution: check exactly."""
    from explorer.lens import attribution
    from explorer.lens.tasks import translation_items
    from explorer.lens.words import load_words

    run, vocab, texts = tiny_lens
    items = translation_items(load_words(words_csv), "ru", "zh", 1, 0)
    res = attribution.attribute(run, items, vocab, task="translate", strategy="prefixes", config={}, labels=lambda ids: {})
    kept, _ = attribution.select(items, vocab, "prefixes")
    for (it, tgt, eng, *_), entry in zip(kept, res.per_entry):
        ids = run.tokenizer(it.prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            p = torch.softmax(run.model(ids).logits[0, -1], -1)
        assert entry["p_target"][-1] == pytest.approx(float(p[sorted(tgt)].sum()), abs=1e-5)
        assert entry["p_english"][-1] == pytest.approx(float(p[sorted(eng)].sum()), abs=1e-5)


def test_token_sets_and_selection(tiny_lens):
    _, vocab, texts = tiny_lens
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
    assert r.exit_code != 0 and "the header must be" in r.stderr


def test_missing_final_norm_is_named(tiny_lens, words_csv):
    from dataclasses import replace

    from explorer.lens import attribution
    from explorer.lens.tasks import translation_items
    from explorer.lens.words import load_words

    run, vocab, _ = tiny_lens
    run.anatomy = replace(run.anatomy, final_norm=None)
    items = translation_items(load_words(words_csv), "ru", "zh", 1, 0)
    with pytest.raises(ExplorerError, match="no final norm"):
        attribution.attribute(run, items, vocab, task="t", strategy="prefixes", config={}, labels=lambda ids: {})


def test_word_list_alternatives(tmp_path):
    from explorer.lens.tasks import translation_items
    from explorer.lens.words import load_words

    p = tmp_path / "alts.csv"
    p.write_text("concept,en,fr,zh\nsun,sun,soleil,太阳| 日 |\nwater,water,eau,水\n", encoding="utf-8")
    sun, water = load_words(p)
    assert sun.words["zh"] == "太阳" and sun.forms["zh"] == ("太阳", "日") and water.forms["zh"] == ("水",)
    items = translation_items([sun, water], "fr", "zh", 1, 0)
    assert items[0].target == "太阳" and items[0].targets == ("太阳", "日")
    assert '中文: "太阳"' in items[1].prompt and "日" not in items[1].prompt  # prompts show the first form only
    p.write_text("concept,en,zh\nsun,sun, | \n", encoding="utf-8")
    with pytest.raises(ExplorerError, match="empty word for zh"):
        load_words(p)


def test_an_accepted_alternative_counts_and_the_shown_form_is_reported(tiny_lens, words_csv):
    """An entry whose last-layer top-1 is an accepted alternative is correct, but not correct_first."""
    from explorer.lens import attribution
    from explorer.lens.tasks import PromptItem, translation_items
    from explorer.lens.words import load_words

    run, vocab, texts = tiny_lens
    it = translation_items(load_words(words_csv), "ru", "zh", 1, 0)[0]
    first = attribution.attribute(run, [it], vocab, task="translate", strategy="prefixes", config={}, labels=lambda ids: {})
    top = texts[first.per_entry[0]["top1_last"]]
    shown = next(w for w in ("水", "花", "王") if not top.strip().startswith(w) and top not in w)
    alt = PromptItem(it.concept, it.prompt, (shown, top), ("zzzz",))
    res = attribution.attribute(run, [alt], vocab, task="translate", strategy="prefixes", config={}, labels=lambda ids: {})
    e = res.per_entry[0]
    assert e["accepted"] == [shown, top] and e["correct"] and not e["correct_first"]
    assert res.accuracy == 1.0 and res.accuracy_first == 0.0


def test_bundled_word_list_and_cloze_sentences():
    """At least 100 concepts, five languages each; one cloze sentence per concept and language
    with one blank and none of the answer's accepted forms in it."""
    from explorer.lens.tasks import cloze_sentences
    from explorer.lens.words import LANGS, load_words

    concepts = load_words()
    assert len(concepts) >= 100 and len({c.concept for c in concepts}) == len(concepts)
    sentences = cloze_sentences()
    for c in concepts:
        assert set(c.words) == set(LANGS)
        for lang in LANGS:
            s = sentences[(c.concept, lang)]
            assert s.count("___") == 1, (c.concept, lang)
            assert not any(f.lower() in s.lower() for f in c.forms[lang]), (c.concept, lang, s)


def test_a_lens_run_is_stored_whole_or_not_at_all(tiny_root, tmp_path):
    """The repository writes a run, its layers and its entries in one transaction; ids come
    from a sequence, so a later run gets a larger id."""
    import shutil

    from explorer.lens.attribution import LayerStats, LensResult
    from explorer.store.lensruns import record_lens_run

    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    cat = Catalog(root)
    model_id = cat.model("tiny-llama").model_id
    entry = {"concept": "water", "target": "水", "english": "water", "prompt": "p", "top1_last_token": "水",
             "correct": True, "correct_first": True, "accepted": ["水"], "p_target": [0.1, 0.7], "p_english": [0.5, 0.1]}
    layers = [LayerStats(i, 0.1, 0.0, 0.2, 0.0, 1.0, 1.0, "水") for i in range(2)]

    def result(entries):
        return LensResult("translate", "tiny-llama", {"from": "en", "to": "zh"}, len(entries), {}, 1.0, layers, entries,
                          accuracy_first=1.0)

    def counts():
        return [cat.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("lens_runs", "lens_layers", "lens_entries")]

    first = record_lens_run(cat, model_id, result([entry]))
    before = counts()
    broken = {k: v for k, v in entry.items() if k != "prompt"}  # fails after the run and its layers were inserted
    with pytest.raises(KeyError):
        record_lens_run(cat, model_id, result([entry, broken]))
    assert counts() == before
    second = record_lens_run(cat, model_id, result([entry, entry]))
    assert second > first
    assert counts() == [before[0] + 1, before[1] + 2, before[2] + 2]
    assert cat.query("SELECT entries, config FROM lens_runs WHERE run_id = ?", [second]) == [(2, '{"from": "en", "to": "zh"}')]
