"""One position's path through the layers: logit lens and nearest input embeddings.

For each layer L (0 = embedding output): (a) the top tokens of
softmax(unembed(final_norm(h_L))) and (b) the input-embedding tokens nearest to h_L by
cosine. This is the view of Wendler et al. (2024): does a French->Chinese prompt pass
through English in the middle layers?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayerView:
    layer: int
    lens_top: tuple[tuple[str, int, float], ...]  # (token, id, prob)
    embedding_top: tuple[tuple[str, int, float], ...]  # (token, id, cosine)

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "lens_top": [{"token": t, "token_id": i, "prob": p} for t, i, p in self.lens_top],
            "embedding_top": [{"token": t, "token_id": i, "score": s} for t, i, s in self.embedding_top],
        }


@dataclass(frozen=True)
class Trajectory:
    model: str
    text: str
    position: int
    token: str
    tokens: tuple[str, ...]
    layers: tuple[LayerView, ...]

    def to_dict(self) -> dict:
        return {
            "model": self.model, "text": self.text, "position": self.position, "token": self.token,
            "tokens": list(self.tokens), "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True)
class PositionLens:
    """One position after the forward pass: its hidden state per layer and the lens's top ``k``."""

    model: str
    text: str
    position: int
    tokens: tuple[str, ...]
    hidden: np.ndarray  # (L+1, d), before the final norm
    top_probs: np.ndarray  # (L+1, k)
    top_ids: np.ndarray  # (L+1, k)


def run_position(runner, text: str, position: int | None = None, k: int = 5, translator=None) -> PositionLens:
    """Run ``text`` through ``runner`` and read ``position`` at every layer with the logit lens
    (or the learned lens ``translator``)."""
    import torch

    states = runner.run(text)
    p = states.position(position)
    hidden = states.layers[:, p, :]  # (L+1, d)
    top_p, top_i = torch.topk(runner.lens_probs(hidden, translator), k, dim=-1)
    return PositionLens(runner.row.name, text, p, tuple(states.tokens), hidden, top_p.numpy(), top_i.numpy())


def layer_views(lens: PositionLens, emb) -> Trajectory:
    """The Trajectory of ``lens``: per layer its top tokens and the nearest rows of ``emb``
    (the model's opened input vector set: its index and token labels)."""
    k = lens.top_ids.shape[1]
    hits = emb.index.search(lens.hidden, k)
    labels = emb.tokens.labels([int(i) for i in lens.top_ids.flatten()] + [int(i) for i in hits.ids.flatten()])
    views = []
    for layer in range(lens.hidden.shape[0]):
        top = tuple((labels.get(int(i), str(int(i))), int(i), float(v))
                    for v, i in zip(lens.top_probs[layer].tolist(), lens.top_ids[layer].tolist()))
        near = tuple((labels.get(int(i), str(int(i))), int(i), float(s)) for s, i in zip(hits.scores[layer], hits.ids[layer]))
        views.append(LayerView(layer, top, near))
    return Trajectory(lens.model, lens.text, lens.position, lens.tokens[lens.position], lens.tokens, tuple(views))
