"""Shared fixtures: a tiny seeded model built from a config, and the real default model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    "king", "queen", "man", "woman", "prince", "princess", "boy", "girl", "apple", "banana",
    "Paris", "France", "Berlin", "Germany", "water", "fire", "花", "水", "король", "королева",
]


def build_tiny_model(directory: Path, tied: bool = False, seed: int = 0) -> Path:
    """A 2-layer Llama with a word-level tokenizer whose entries look like SentencePiece's."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    pieces = [f"▁{w}" for w in WORDS] + ["king", "queen", "▁King", "ing", "▁xy", "z", "<0x41>"]
    vocab = {tok: i for i, tok in enumerate(specials + pieces)}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", continuing_subword_prefix="", max_input_chars_per_word=100))
    tk.normalizer = normalizers.Replace(" ", "▁")
    tk.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tk.decoder = decoders.Replace("▁", " ")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tied,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    fast.save_pretrained(str(directory))
    (directory / "words.json").write_text(json.dumps(WORDS))
    return directory


def first_model(root: Path) -> str:
    """The name of the first model in a data root's catalog (a root holding one model)."""
    from explorer.store.catalog import Catalog

    cat = Catalog(root)
    return cat.models()[0].name


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model exported, shared by the whole session: a test that stores more in a
    root (states, models, runs) copies it first, so results never depend on test order."""
    from explorer.models.export import export_model

    root = tmp_path_factory.mktemp("tiny-root")
    export_model(str(tiny_model_dir), root)
    return root


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Converted real models are cached across runs (conversion takes a minute)."""
    env = os.environ.get("EXPLORER_MODEL_CACHE")
    return Path(env) if env else REPO / "indexes" / "models"


@pytest.fixture(scope="session")
def gemma_root(tmp_path_factory, model_cache) -> Path:
    """A fresh data root with the real default model exported (the conversion is cached)."""
    from explorer.models.export import export_model

    root = tmp_path_factory.mktemp("gemma-root")
    old = os.environ.get("EXPLORER_MODEL_CACHE")
    os.environ["EXPLORER_MODEL_CACHE"] = str(model_cache)
    try:
        export_model("gemma3-270m", root)
    finally:
        if old is None:
            os.environ.pop("EXPLORER_MODEL_CACHE", None)
        else:
            os.environ["EXPLORER_MODEL_CACHE"] = old
    return root


@pytest.fixture(scope="session")
def tiny_lens_root(tmp_path_factory, tiny_root) -> Path:
    """A copy of the session's tiny root with a linear lens trained on a small tagged corpus
    (the shared tiny_root itself never gets one: tests of 'no stored lens' use it)."""
    import shutil

    import numpy as np

    from explorer.services.lenses import TrainSpec, train_lens
    from explorer.services.engine import Engine

    base = tmp_path_factory.mktemp("tiny-lens")
    root = shutil.copytree(tiny_root, base / "root")
    rng = np.random.default_rng(0)
    lines = ["lang\ttext"] + [f"{lang}\t" + " ".join(rng.choice(WORDS[:16], size=12)) for lang in ("en", "zh") for _ in range(6)]
    corpus = base / "tiny.tsv"
    corpus.write_text("\n".join(lines) + "\n")
    train_lens(Engine(root), TrainSpec(model="tiny-llama", corpus=corpus, tokens=100))
    return root
