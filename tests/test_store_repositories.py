"""Repository queries over tokens and hidden states: the SQL the services call."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import ExplorerError
from explorer.store import tokens
from explorer.store.catalog import Catalog
from explorer.store.predicate import check_where
from explorer.store.states import StateStore

WORDS = ["▁king", "▁queen", "ing", "▁花", "<eos>"]
DOCS = [("en", "king queen", 3), ("zh", "花", 2)]  # (lang, text, tokens)


def _tokens(cat: Catalog, name: str, words: list[str]) -> int:
    mid = cat.upsert_model(name=name, source=name, source_kind="test")
    n = len(words)
    cat.replace_tokens(mid, {
        "token_id": np.arange(n, dtype=np.int32),
        "raw": np.array(words, dtype=object),
        "text": np.array([w.replace("▁", " ") for w in words], dtype=object),
        "leading_space": np.array([w.startswith("▁") for w in words]),
        "script": np.array(["cjk" if w == "▁花" else "special" if w == "<eos>" else "latin" for w in words], dtype=object),
        "is_special": np.array([w == "<eos>" for w in words]),
        "is_byte": np.zeros(n, dtype=bool),
    })
    return mid


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    cat = Catalog(tmp_path)
    _tokens(cat, "other", ["▁king", "▁man"])  # same words in another model never leak in
    _tokens(cat, "m", WORDS)
    return cat


def _corpus(cat: Catalog):
    store = StateStore(cat)
    mid = cat.model("m").model_id
    corpus = store.plan(mid, "docs", "prompts", DOCS, n_layers=2, dim=4, dtype="float32", model_name="m")
    store.commit(corpus, [0, 1], {
        "state_id": np.arange(5, dtype=np.int64),
        "doc_id": np.array([0, 0, 0, 1, 1], dtype=np.int32),
        "position": np.array([0, 1, 2, 0, 1], dtype=np.int32),
        "token_id": np.array([4, 0, 1, 4, 3], dtype=np.int32),
        "token": np.array(["<eos>", " king", " queen", "<eos>", " 花"], dtype=object),
    })
    return store, store.corpus(mid, "docs")


def test_token_ids_by_script_and_predicate(catalog):
    mid = catalog.model("m").model_id
    assert sorted(tokens.token_ids(catalog, mid, "latin", None)) == [0, 1, 2]
    assert sorted(tokens.token_ids(catalog, mid, None, check_where("leading_space AND NOT is_special"))) == [0, 1, 3]
    assert sorted(tokens.token_ids(catalog, mid, "latin", check_where("leading_space"))) == [0, 1]
    assert tokens.token_ids(catalog, mid, "cyrillic", None) == []
    with pytest.raises(ExplorerError, match="^bad --where predicate on the tokens table: .*no_such_column"):
        tokens.token_ids(catalog, mid, None, check_where("no_such_column > 1"))


def test_token_texts_by_id_within_the_rows(catalog):
    mid = catalog.model("m").model_id
    assert tokens.token_texts(catalog, mid, 3) == [(0, " king"), (1, " queen"), (2, "ing")]
    assert len(tokens.token_texts(catalog, mid, 100)) == len(WORDS)


def test_browsing_tokens_and_sets(catalog):
    mid = catalog.model("m").model_id
    rows, total = tokens.find_tokens(catalog, tokens.TokenSearch(mid, text="n"), 1)
    assert total == 3 and [r[0] for r in rows] == [0]  # the first by id; the total counts all
    rows, total = tokens.find_tokens(catalog, tokens.TokenSearch(mid, text="e", leading_space=True), 10)
    assert [r[2] for r in rows] == [" queen"] and total == 1
    rows, total = tokens.find_tokens(catalog, tokens.TokenSearch(mid, script="latin", first=1, last=2), 10)
    assert [r[0] for r in rows] == [1, 2] and total == 2
    assert dict(tokens.token_scripts(catalog, mid)) == {"latin": 3, "cjk": 1, "special": 1}
    _corpus(catalog)
    sets = tokens.stored_sets(catalog)
    assert [(r[1], r[3], r[4]) for r in sets] == [("m", "hidden states", 5)]


def test_state_queries(catalog):
    store, corpus = _corpus(catalog)
    assert store.token_ids(corpus.corpus_id) == [4, 0, 1, 4, 3]
    assert sorted(store.state_ids(corpus, check_where("lang = 'zh'"))) == [3, 4]
    assert sorted(store.state_ids(corpus, check_where("position > 0 AND token_id < 4"))) == [1, 2, 4]
    with pytest.raises(ExplorerError, match="^bad --where predicate on hidden_states: .*nope"):
        store.state_ids(corpus, check_where("nope = 1"))
    assert store.hits(corpus, "m", [4, 1]) == {4: (1, 1, " 花", 3, "zh"), 1: (0, 1, " king", 0, "en")}
    assert store.tokens_around(corpus.corpus_id, 0, 1, 5) == [(1, " king"), (2, " queen")]


def test_recorded_compressed_index_replaces_the_old_one(catalog):
    store, corpus = _corpus(catalog)
    assert store.index_path(corpus.corpus_id, 1, "sq8") is None
    store.record_index(corpus.corpus_id, 1, "sq8", "a.faiss", 10, "00", 0.9, "{}", 1.0)
    store.record_index(corpus.corpus_id, 1, "sq8", "b.faiss", 12, "11", 0.95, '{"m": 8}', 2.0)
    store.record_index(corpus.corpus_id, 0, "ivfpq", "c.faiss", 5, "22", 0.8, "{}", 1.0)
    assert store.index_path(corpus.corpus_id, 1, "sq8") == "b.faiss"
    assert catalog.query("SELECT count(*), sum(bytes) FROM state_indexes") == [(2, 17)]
