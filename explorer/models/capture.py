"""Run a model and capture its residual stream at every layer.

Layer 0 is the embedding output (what the first block reads: Gemma's includes the
sqrt(d) scale, an encoder's the position embeddings and LayerNorm), layer L (1..n) the
output of block L, *before* the final norm. (In transformers 5.x ``hidden_states[-1]``
is already final-normed while the others are not; capturing block outputs with hooks
gives every layer the same meaning, and the logit lens applies the final norm once to
each.) Only the model's body runs: no logits over the vocabulary are computed."""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from explorer.errors import ExplorerError
from explorer.models.surgery import Anatomy


@dataclass
class Captured:
    """Hidden states of one batch: ``layers[l]`` is (batch, seq, d); ``lengths`` per row."""

    layers: list[torch.Tensor]
    input_ids: torch.Tensor  # (batch, seq), right-padded
    lengths: list[int]


@contextmanager
def _hooks(anat: Anatomy) -> Iterator[dict[int, torch.Tensor]]:
    if anat.layers is None:
        raise ExplorerError(f"cannot find the decoder layers of {anat.architecture}")
    store: dict[int, torch.Tensor] = {}

    def grab(i: int):
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            store[i] = (output[0] if isinstance(output, tuple) else output).detach()

        return hook

    handles = [anat.entry.register_forward_hook(grab(0))]
    handles += [layer.register_forward_hook(grab(i + 1)) for i, layer in enumerate(anat.layers)]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_tokens)
    return [list(ids) for ids in enc["input_ids"]]


@torch.inference_mode()
def capture(model: Any, anat: Anatomy, token_ids: Sequence[Sequence[int]], pad_id: int = 0) -> Captured:
    """Forward a batch of token-id lists (right-padded) and capture every layer."""
    lengths = [len(t) for t in token_ids]
    if not lengths or min(lengths) == 0:
        raise ExplorerError("cannot run the model on an empty text")
    width = max(lengths)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for i, t in enumerate(token_ids):
        ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        mask[i, : len(t)] = 1
    body = getattr(model, "base_model", model)  # the layers only: no logits over the vocabulary
    extra = {"use_cache": False} if "use_cache" in inspect.signature(body.forward).parameters else {}
    device = next(body.parameters()).device  # a GPU on a Ray worker that has one
    with _hooks(anat) as store:
        body(input_ids=ids.to(device), attention_mask=mask.to(device), **extra)
    n = anat.n_layers + 1
    missing = [i for i in range(n) if i not in store]
    if missing:
        raise ExplorerError(f"layers {missing} produced no output; unsupported architecture {anat.architecture}")
    return Captured([store[i] for i in range(n)], ids, lengths)


def logits(anat: Anatomy, model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The logit lens: final norm, then the unembedding (and the model's softcap, if any)."""
    if anat.unembed is None:
        raise ExplorerError(f"{anat.architecture} has no unembedding (not a causal language model): the logit lens does not apply")
    if anat.final_norm is None:
        raise ExplorerError(f"{anat.architecture}: no final norm found; the logit lens would give wrong numbers")
    return softcap(model, anat.unembed(anat.final_norm(hidden)))


def softcap(model: Any, logits: torch.Tensor) -> torch.Tensor:
    """The model's final logit softcap (Gemma: cap * tanh(logits / cap)); unchanged without one."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits
