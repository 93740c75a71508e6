"""A layer's mean state and the norms of its centred rows, computed once and kept.

Beside a finished corpus's ``layer_XX.npy`` sit ``layer_XX.mean.npy`` (the mean row,
float32) and ``layer_XX.centered_norms.npy`` (``|x - mean|`` of every row), written
atomically and recorded in ``state_files`` (roles ``mean`` and ``centered_norms``) with
size, mtime and SHA-256, so ``explorer index verify`` and every search check them like
the layer files. A corpus deleted or re-exported takes them along.

The mean leaves out the states at position 0 (when others exist). In decoder models
that is the BOS token, whose state carries "massive activations" (Sun et al. 2024):
in Gemma 3 270M's middle layers its norm is about 15x any other state's, so a mean over
all rows points mostly along it, and rows centred on that mean still share one
direction (measured on the bundled sample at layer 9: mean cosine of random pairs 0.71
centred on the all-rows mean, 0.01 without position 0; see README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.errors import CorruptFile
from explorer.query.anisotropy import centered_norms, layer_mean
from explorer.store.files import atomic_path
from explorer.store.states import CorpusRow, StateStore, layer_file

ROLES = ("mean", "centered_norms")
MEAN_OF = "states at positions > 0 (BOS left out; all states if none)"  # what a layer's mean averages


@dataclass(frozen=True)
class LayerCentre:
    """The corpus mean of one layer and its rows' centred norms; ``computed`` says whether
    this call computed them (False: read from the stored files)."""

    layer: int
    mean: np.ndarray
    norms: np.ndarray
    computed: bool


def centre_file(layer: int, role: str) -> str:
    return f"layer_{layer:02d}.{role}.npy"


def layer_centre(store: StateStore, corpus: CorpusRow, layer: int, progress=None) -> LayerCentre:
    """The stored centre of ``layer`` if recorded, else computed from the layer file,
    written and recorded (one pass for the mean, one for the norms); ``progress(label,
    done, total)`` is called only once the mean takes over a couple of seconds."""
    from explorer.store.sets import deferred

    recorded = {f.role: f for f in store.files(corpus.corpus_id) if f.layer == layer and f.role in ROLES}
    if len(recorded) == len(ROLES):
        return LayerCentre(layer, *(_load(store, recorded[r].path, corpus, r) for r in ROLES), computed=False)
    matrix = np.load(store.root / corpus.path / layer_file(layer), mmap_mode="r")
    later = np.asarray(store.positions(corpus.corpus_id)) > 0
    mean = layer_mean(matrix, later if later.any() else None, deferred(progress, f"mean state of layer {layer}"))
    norms = centered_norms(matrix, mean)
    for role, values in zip(ROLES, (mean, norms)):
        with atomic_path(store.root / corpus.path / centre_file(layer, role)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, values)
    store.record_layer_files([store.file_row(corpus, layer, role, centre_file(layer, role)) for role in ROLES])
    return LayerCentre(layer, mean, norms, computed=True)


def _load(store: StateStore, rel: str, corpus: CorpusRow, role: str) -> np.ndarray:
    try:
        values = np.load(store.root / rel)
    except (OSError, ValueError) as exc:
        raise CorruptFile(f"{rel} is unreadable ({str(exc)[:120]}); run `explorer index verify`") from None
    expected = (corpus.dim,) if role == "mean" else (corpus.committed,)
    if values.shape != expected:
        raise CorruptFile(f"{rel} holds shape {values.shape}, expected {expected}; run `explorer index verify`")
    return values.astype(np.float32, copy=False)
