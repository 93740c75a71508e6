"""One position's path through the layers: logit lens and nearest input embeddings.

For each layer L (0 = embedding output): (a) the top tokens of
softmax(unembed(final_norm(h_L))) and (b) the input-embedding tokens nearest to h_L by
cosine. This is the view of Wendler et al. (2024): does a French->Chinese prompt pass
through English in the middle layers?
"""

from __future__ import annotations

from dataclasses import dataclass


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


def trajectory(engine, runner, text: str, position: int | None = None, k: int = 5) -> Trajectory:
    import torch

    states = runner.run(text)
    p = states.position(position)
    hidden = states.layers[:, p, :]  # (L+1, d)
    probs = runner.lens_probs(hidden)
    top_p, top_i = torch.topk(probs, k, dim=-1)
    emb = engine.open_set(runner.row.name, "input")
    hits = emb.index.search(hidden, k)
    labels = emb.tokens.labels(list(top_i.flatten().tolist()) + list(hits.ids.flatten()))
    views = []
    for layer in range(hidden.shape[0]):
        lens = tuple(
            (labels.get(int(i), str(int(i))), int(i), float(v)) for v, i in zip(top_p[layer].tolist(), top_i[layer].tolist())
        )
        near = tuple((labels.get(int(i), str(int(i))), int(i), float(s)) for s, i in zip(hits.scores[layer], hits.ids[layer]))
        views.append(LayerView(layer, lens, near))
    return Trajectory(runner.row.name, text, p, states.tokens[p], tuple(states.tokens), tuple(views))


