"""How faithful is a lens: per layer, on held-out states, KL(final || lens) in bits and how
often the lens's top-1 token is the model's.

"Final" is the model's own next-token distribution, the logit lens at the last layer
(final norm, unembedding, softcap: what ``model(...).logits`` gives). Every lens
distribution costs a (tokens x vocabulary) product per layer (262,144 x 640 for Gemma 3),
so rows go through in blocks of :data:`BLOCK` and the caller caps the number of tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from explorer.core.types import Progress
from explorer.errors import ExplorerError

BLOCK = 64  # rows per full-vocabulary product: 64 x 262,144 float32 = 64 MiB per tensor


@dataclass(frozen=True)
class LayerFidelity:
    layer: int
    kl_logit: float  # mean KL(final || logit lens), bits
    kl_tuned: float | None  # the same for the learned lens (None without one)
    top1_logit: float  # share of tokens whose lens top-1 is the model's top-1
    top1_tuned: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _logprobs(anat, model, hidden):
    """log-softmax of the logit lens for (n, d) rows, as float32."""
    import torch

    from explorer.models.capture import logits

    return torch.log_softmax(logits(anat, model, hidden).float(), dim=-1)


def _compare(final_logp, final_top, lens_logp) -> tuple[np.ndarray, np.ndarray]:
    """Per row: KL(final || lens) in bits and whether the top-1 tokens agree."""
    kl = (final_logp.exp() * (final_logp - lens_logp)).sum(-1) / math.log(2)
    return kl.numpy(), (lens_logp.argmax(-1) == final_top).numpy()


def layer_fidelity(anat, model, layers: Sequence[np.ndarray], translator=None,
                   progress: Progress | None = None) -> list[LayerFidelity]:
    """``layers[l]``: the (n, d) held-out states of layer l (0 = embedding output, last =
    the last block's output, before the final norm), the same n tokens at every layer."""
    import torch

    n_layers = len(layers)
    n = layers[0].shape[0]
    if n == 0:
        raise ExplorerError("no held-out states to measure the lens on")
    if translator is not None and translator.n_layers + 1 != n_layers:
        raise ExplorerError(f"the lens has {translator.n_layers + 1} layers, the states {n_layers}")
    sums = np.zeros((4, n_layers))  # kl_logit, kl_tuned, top1_logit, top1_tuned
    blocks = range(0, n, BLOCK)
    with torch.inference_mode():
        for done, start in enumerate(blocks, 1):
            rows = [torch.from_numpy(np.ascontiguousarray(x[start : start + BLOCK], dtype=np.float32)) for x in layers]
            final = _logprobs(anat, model, rows[-1])
            top = final.argmax(-1)
            sums[2:, -1] += len(top)  # the last layer is the final distribution itself: KL 0, top-1 agrees
            for layer in range(n_layers - 1):
                kl, agree = _compare(final, top, _logprobs(anat, model, rows[layer]))
                sums[0, layer] += kl.sum()
                sums[2, layer] += agree.sum()
                if translator is not None:
                    kl, agree = _compare(final, top, _logprobs(anat, model, translator.layer(layer, rows[layer])))
                    sums[1, layer] += kl.sum()
                    sums[3, layer] += agree.sum()
            if progress:
                progress("held-out tokens", min(start + BLOCK, n), n)
    mean = sums / n
    tuned = translator is not None
    return [LayerFidelity(layer, float(mean[0, layer]), float(mean[1, layer]) if tuned else None,
                          float(mean[2, layer]), float(mean[3, layer]) if tuned else None) for layer in range(n_layers)]
