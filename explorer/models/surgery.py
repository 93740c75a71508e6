"""Where each architecture keeps its embedding, unembedding, final norm and layers.

Everything architecture-specific lives here; the rest of the code asks for an
:class:`Anatomy`. We wrap the real ``transformers`` modules rather than re-implementing
models, so numbers match what the model computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from explorer.errors import ExplorerError

# (attribute path of the body, its layer list); "" is the model itself (a bare body, as
# AutoModel loads encoders and head-less checkpoints). The first that exists wins.
_BODIES = (
    ("model", "layers"),  # Llama, Gemma 1-3, Mistral, Qwen2, Phi-3, SmolLM
    ("transformer", "h"),  # GPT-2, GPT-J, Bloom
    ("gpt_neox", "layers"),  # Pythia
    ("model.decoder", "layers"),  # OPT
    ("", "layers"),  # the decoders above as bare bodies
    ("", "h"),
    ("decoder", "layers"),
    ("encoder", "layer"),  # BERT, RoBERTa, XLM-R, ELECTRA, MPNet (post-LN: no final norm)
    ("transformer", "layer"),  # DistilBERT
)
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm")
# model types that multiply the looked-up embedding by sqrt(hidden_size)
_SQRT_D_SCALED = ("gemma", "gemma2", "gemma3", "gemma3_text", "recurrent_gemma")


@dataclass(frozen=True)
class Anatomy:
    embed: Any  # nn.Embedding (rows: token ids)
    entry: Any  # the module whose output is layer 0: embed, or an encoder's embeddings block
    unembed: Any | None  # nn.Linear whose weight is (vocab, d); None when the checkpoint has none
    final_norm: Any | None
    layers: Any | None
    embed_scale: float
    tied: bool
    n_layers: int
    d_model: int
    vocab_rows: int
    architecture: str
    model_type: str


def _get(obj: Any, dotted: str) -> Any:
    for part in filter(None, dotted.split(".")):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def anatomy(model: Any) -> Anatomy:
    embed = model.get_input_embeddings()
    if embed is None or not hasattr(embed, "weight"):
        raise ExplorerError(f"{type(model).__name__} has no input embedding matrix")
    unembed = model.get_output_embeddings()
    config = model.config
    body = layers = norm = None
    for body_path, layers_attr in _BODIES:
        body = _get(model, body_path)
        if body is not None and getattr(body, layers_attr, None) is not None:
            layers = getattr(body, layers_attr)
            norm = next((getattr(body, n) for n in _FINAL_NORMS if getattr(body, n, None) is not None), None)
            break
    scale = getattr(embed, "embed_scale", None)
    if scale is not None:
        scale = float(scale)
    elif getattr(config, "model_type", "") in _SQRT_D_SCALED:
        scale = math.sqrt(config.hidden_size)
    else:
        scale = 1.0
    w = embed.weight
    tied = bool(
        unembed is not None
        and (unembed.weight.data_ptr() == w.data_ptr() or (unembed.weight.shape == w.shape and bool((unembed.weight == w).all())))
    )
    return Anatomy(
        embed=embed,
        entry=_entry(model, embed),
        unembed=unembed,
        final_norm=norm,
        layers=layers,
        embed_scale=scale,
        tied=tied,
        n_layers=len(layers) if layers is not None else int(getattr(config, "num_hidden_layers", 0) or 0),
        d_model=int(w.shape[1]),
        vocab_rows=int(w.shape[0]),
        architecture=(getattr(config, "architectures", None) or [type(model).__name__])[0],
        model_type=str(getattr(config, "model_type", "")),
    )


def _entry(model: Any, embed: Any) -> Any:
    """What the first block reads: an encoder's ``embeddings`` block (token + position +
    type embeddings, LayerNorm) when the model has one around ``embed``, else ``embed``."""
    base = getattr(model, "base_model", model)
    block = getattr(base, "embeddings", None)
    if block is not None and block is not embed and hasattr(block, "modules") and any(m is embed for m in block.modules()):
        return block
    return embed
