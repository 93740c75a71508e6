"""Encoders (BERT-style, as sentence-transformers ships them) and head-less checkpoints:
input embedding only, no invented unembedding, quiet loading, hidden states for
neighbour search, and one-line refusals from the lens."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from clitools import one_line_error, run
from conftest import WORDS, build_tiny_model
from explorer.models import loading
from explorer.models.export import export_model
from explorer.services.states import export_states
from explorer.store.catalog import Catalog
from explorer.store.states import StateStore, layer_file
from explorer.store.vectorset import VectorSet

DOCS = ["king queen man woman", "paris france berlin germany water", "boy girl prince princess"] * 2


def build_tiny_bert(directory):
    """A 2-layer BertModel (the bare body, no MLM head: as sentence-transformers saves it)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w.lower() for w in WORDS}) + ["##s"]
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=64, architectures=["BertModel"])
    model = BertModel(config)
    model.save_pretrained(str(directory), safe_serialization=True)
    tok.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="module")
def bert_root(tmp_path_factory, bert_dir):
    root = tmp_path_factory.mktemp("bert-root")
    corpus = root.parent / "bert-docs.txt"
    corpus.write_text("\n".join(DOCS) + "\n")
    export_model(str(bert_dir), root)
    export_states("tiny-bert", root, corpus=corpus, batch_size=4)
    return root


def test_encoder_stores_its_input_embedding_and_no_unembedding(bert_root, bert_dir):
    cat = Catalog(bert_root)
    (m,) = cat.models()
    assert m.architecture == "BertModel" and m.tied is None and (m.n_layers, m.d_model) == (2, 16)
    assert [s.name for s in cat.vector_sets(m.model_id)] == ["input"]
    row = cat.vector_set(m.model_id, "input")
    w = load_file(str(bert_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert VectorSet.open(bert_root / row.path).vectors.tobytes() == w.astype(np.float32).tobytes()
    r = run(bert_root, "export", str(bert_dir), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["tied"] is None


def test_encoder_export_keeps_transformers_quiet(bert_dir, tmp_path):
    """In a real process (transformers' logging writes to the process's stderr): no load
    report, no 'newly initialized', no advice; our own lines only."""
    proc = subprocess.run([sys.executable, "-m", "explorer", "--root", str(tmp_path), "export", str(bert_dir)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for noise in ("LOAD REPORT", "newly initialized", "MISSING", "[transformers]", "Warning"):
        assert noise not in proc.stderr, proc.stderr
    assert "no unembedding" in proc.stdout


def test_encoder_states_match_its_hidden_states(bert_root, bert_dir):
    from transformers import AutoModel, AutoTokenizer

    cat = Catalog(bert_root)
    (c,) = StateStore(cat).corpora()
    assert c.status == "done" and c.n_layers == 3
    model, tok = AutoModel.from_pretrained(str(bert_dir)).eval(), AutoTokenizer.from_pretrained(str(bert_dir))
    first, n = cat.query("SELECT first_state, n_tokens FROM documents WHERE corpus_id = ? AND doc_id = 1", [c.corpus_id])[0]
    with torch.no_grad():
        hs = model(**tok(DOCS[1], return_tensors="pt"), output_hidden_states=True).hidden_states
    for layer in range(3):  # layer 0: embeddings block (positions + LayerNorm); BERT's layers are post-LN
        stored = np.load(bert_root / c.path / layer_file(layer))[first : first + n]
        np.testing.assert_allclose(stored, hs[layer][0].numpy(), atol=1e-5)


def test_encoder_neighbours_at_a_layer(bert_root):
    r = run(bert_root, "neighbours", "--layer", "2", "paris france berlin germany water", "--position", "2",
            "--model", "tiny-bert", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["token"] == "france" and out["results"][0]["token"] == "france"
    assert out["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("args", [
    ["trajectory", "king queen"],
    ["lens", "prompt", "king queen"],
    ["lens", "translate", "--limit", "1"],
    ["lens", "repeat", "--limit", "1"],
    ["lens", "cloze", "--limit", "1"],
    ["map-path", "king queen"],
])
def test_lens_commands_refuse_an_encoder_before_loading_it(bert_root, monkeypatch, args):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_model", refuse)
    line = one_line_error(run(bert_root, *args, "--model", "tiny-bert"))
    assert "no unembedding" in line and "tiny-bert" in line


def test_causal_checkpoint_without_its_lm_head(tmp_path):
    """An untied causal LM saved without lm_head.weight: transformers would invent one.
    We load the body, record no unembedding, and say so in one line of our own."""
    d = build_tiny_model(tmp_path / "headless", tied=False)
    weights = load_file(str(d / "model.safetensors"))
    del weights["lm_head.weight"]
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    messages: list[str] = []
    rep = export_model(str(d), tmp_path / "root", report=messages.append)
    assert rep.tied is None and rep.steps == ["tokens", "input"]
    assert sum("no LM head weights" in m for m in messages) == 1
    cat = Catalog(tmp_path / "root")
    (m,) = cat.models()
    assert cat.vector_set(m.model_id, "output") is None and m.tied is None
