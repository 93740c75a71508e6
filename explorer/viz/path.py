"""The path of one position's hidden state through the layers, among token landmarks.

The picture of Wendler et al. (2024): a French->Chinese prompt, its last position drawn
from the first layer to the last, with English and Chinese tokens as landmarks.

What is drawn
-------------
* Path point L (0 = embedding output, 1..n = block outputs): the hidden state h_L at
  the chosen position **after the model's final norm**, i.e. exactly the vector the
  logit lens multiplies by the unembedding (logit_t = <final_norm(h_L), W_U[t]>).
  Without the norm, the residual stream's growing scale would dominate the picture.
* Landmark t: the unembedding row W_U[t] (the ``output`` vector set; for a tied model
  the embedding rows) of each landmark word, resolved as ``explorer query`` resolves.
  Default landmarks: the distinct logit-lens top-1 tokens of the second half of the
  layers (at most six), last layer first.
* Every vector is unit-normalised, then one exact PCA (see
  :func:`explorer.viz.project.pca`) is fitted on the landmarks and the path together
  (``fit="all"``, the default: the plane in which these points vary most) or on the
  landmarks alone (``fit="landmarks"``, at least three: the plane through the landmarks,
  into which the path is projected). Its explained-variance ratio and the share of the
  path's own spread (about the fitted mean) that lies in the plane are reported, since a
  2-D plane can hide most of the geometry. The exact cosines of each layer's point with
  each landmark are reported next to the picture (the lens ranks by dot product, so a
  token with a large row norm can win with a smaller cosine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from explorer.core.numeric import unit_rows
from explorer.errors import ExplorerError
from explorer.query.vocab import Resolved
from explorer.viz.project import ScatterPoint, pca, pca_titles

AUTO_LANDMARKS = 6
FITS = ("all", "landmarks")


@dataclass(frozen=True)
class PathLayer:
    layer: int
    x: float
    y: float
    lens_top: str  # the logit lens's top-1 token at this layer
    lens_top_id: int
    lens_prob: float
    cosines: tuple[float, ...]  # with each landmark, in landmark order

    def to_dict(self, names: Sequence[str]) -> dict:
        return {"layer": self.layer, "x": self.x, "y": self.y, "lens_top": self.lens_top,
                "lens_top_id": self.lens_top_id, "lens_prob": self.lens_prob,
                "cosines": dict(zip(names, self.cosines))}


@dataclass(frozen=True)
class Landmark:
    word: str
    token: str
    token_ids: tuple[int, ...]
    x: float
    y: float

    def to_dict(self) -> dict:
        return {"word": self.word, "token": self.token, "token_ids": list(self.token_ids), "x": self.x, "y": self.y}


@dataclass(frozen=True)
class HiddenPath:
    model: str
    text: str
    position: int
    token: str
    tokens: tuple[str, ...]
    layers: tuple[PathLayer, ...]
    landmarks: tuple[Landmark, ...]
    explained_ratio: tuple[float, float]
    landmarks_auto: bool
    fit: str  # all | landmarks
    path_in_plane: float  # share of sum |p - mean|^2 over path points kept by the plane
    notes: tuple[str, ...] = ()

    @property
    def axis_titles(self) -> tuple[str, str]:
        return pca_titles(self.explained_ratio)

    def points(self) -> tuple[ScatterPoint, ...]:
        path = tuple(ScatterPoint(f"L{v.layer}", None, v.x, v.y, "path") for v in self.layers)
        marks = tuple(ScatterPoint(m.word, m.token_ids[0] if len(m.token_ids) == 1 else None, m.x, m.y, "landmark")
                      for m in self.landmarks)
        return path + marks

    def to_dict(self) -> dict:
        names = [m.word for m in self.landmarks]
        return {
            "model": self.model, "text": self.text, "position": self.position, "token": self.token,
            "tokens": list(self.tokens), "method": "pca", "explained_variance_ratio": list(self.explained_ratio),
            "axis_titles": list(self.axis_titles), "landmarks_auto": self.landmarks_auto, "fit": self.fit,
            "path_in_plane": self.path_in_plane,
            "definition": ("path: unit(final_norm(h_L)); landmarks: unit(unembedding row); PCA fitted on "
                           + ("both" if self.fit == "all" else "the landmarks")),
            "landmarks": [m.to_dict() for m in self.landmarks],
            "layers": [v.to_dict(names) for v in self.layers], "notes": list(self.notes),
        }


def check_fit(fit: str) -> None:
    if fit not in FITS:
        raise ExplorerError(f"unknown --fit {fit!r}; choose one of {', '.join(FITS)}")


def check_landmark_count(marks: Sequence[Resolved], fit: str) -> None:
    """``fit="landmarks"`` needs a plane: at least 3 distinct landmarks."""
    if fit == "landmarks" and len(marks) < 3:
        raise ExplorerError(f"--fit landmarks needs at least 3 distinct landmarks (two span a line, not a plane); "
                            f"got {len(marks)}: {', '.join(m.word for m in marks)}")


@dataclass(frozen=True)
class PathStates:
    """One position after the forward pass: final_norm(h_L) per layer and the lens's top-1."""

    model: str
    text: str
    position: int
    tokens: tuple[str, ...]
    normed: np.ndarray  # (L+1, d): final_norm(h_L), what the logit lens decodes
    top_ids: tuple[int, ...]
    top_probs: tuple[float, ...]


def path_states(runner, text: str, position: int | None = -1) -> PathStates:
    """Run ``text`` through ``runner`` and take ``position``'s state at every layer."""
    states = runner.run(text)
    p = states.position(position)
    hidden = states.layers[:, p, :]  # (L+1, d), before the final norm
    top_p, top_i = runner.lens_probs(hidden).max(dim=-1)
    return PathStates(runner.row.name, text, p, tuple(states.tokens), runner.final_normed(hidden),
                      tuple(int(i) for i in top_i.tolist()), tuple(float(v) for v in top_p.tolist()))


def place_path(ps: PathStates, marks: Sequence[Resolved], rows: np.ndarray, labels: dict[int, str], fit: str,
               auto: bool) -> HiddenPath:
    """Project the path among the landmarks (``rows``: their unembedding rows, in order)."""
    check_fit(fit)
    path_u, mark_u = unit_rows(ps.normed), unit_rows(rows)
    coords, ratio, in_plane = _fit(path_u, mark_u, fit)
    n = len(path_u)
    cos = path_u.astype(np.float64) @ mark_u.astype(np.float64).T
    top = ps.top_ids
    layers = tuple(
        PathLayer(layer, float(coords[layer, 0]), float(coords[layer, 1]), labels.get(top[layer], str(top[layer])),
                  top[layer], ps.top_probs[layer], tuple(float(c) for c in cos[layer]))
        for layer in range(n)
    )
    lms = tuple(Landmark(r.word, r.token, r.token_ids, float(coords[n + j, 0]), float(coords[n + j, 1]))
                for j, r in enumerate(marks))
    notes = tuple(r.notice for r in marks if r.notice)
    return HiddenPath(ps.model, ps.text, ps.position, ps.tokens[ps.position], ps.tokens, layers, lms, ratio,
                      auto, fit, in_plane, notes)


def _fit(path_u: np.ndarray, mark_u: np.ndarray, fit: str) -> tuple[np.ndarray, tuple[float, float], float]:
    """Coordinates of path then landmarks, the explained ratios, and the path's share in the plane."""
    if fit == "landmarks":
        if len(mark_u) < 3:
            raise ExplorerError("--fit landmarks needs at least 3 landmarks (two span a line, not a plane)")
        f = pca(mark_u, 2)
        coords = np.concatenate([f.transform(path_u), f.coords])
    else:
        f = pca(np.concatenate([path_u, mark_u]), 2)
        coords = f.coords
    centred = path_u.astype(np.float64) - f.mean
    total = float(np.einsum("ij,ij->", centred, centred))
    kept = float(np.einsum("ij,ij->", coords[: len(path_u)], coords[: len(path_u)]))
    return coords, (f.explained_ratio[0], f.explained_ratio[1]), kept / total if total else float("nan")


def auto_landmarks(top_ids: Sequence[int], labels: dict[int, str]) -> list[Resolved]:
    """The distinct lens top-1 tokens of the later layers, last layer first (at most six)."""
    chosen: list[int] = []
    for i in reversed(top_ids[len(top_ids) // 2:]):
        if i not in chosen:
            chosen.append(i)
    chosen = chosen[:AUTO_LANDMARKS]
    return [Resolved(_label(labels.get(i, str(i))), (i,), (labels.get(i, str(i)),), "id") for i in chosen]


def resolve_landmarks(words: Sequence[str], resolve: Callable[[str], Resolved]) -> list[Resolved]:
    """Each word's tokens, as `explorer query` resolves them (``resolve(word)``); repeats
    (same tokens) dropped."""
    seen, marks = set(), []
    for w in words:
        r = resolve(w)
        if r.token_ids not in seen:
            seen.add(r.token_ids)
            marks.append(r)
    return marks


def _label(text: str) -> str:
    return text.strip() or repr(text)
