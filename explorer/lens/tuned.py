"""The ``kl`` learned lens: the tuned lens of Belrose et al. 2023, trained by gradient descent.

Per layer l < L an affine translator h -> h @ A[l] + b[l] (the same form as the ``linear``
lens, see :mod:`explorer.lens.learned`), started from the ``linear`` lens (or the
identity), then trained with Adam to minimise the mean over layers and tokens of
KL(final distribution || lens distribution), the final norm, unembedding and softcap frozen.

Vocabulary: a full-vocabulary step costs about 1 TFLOP per 64 tokens over Gemma 3's 18
layers (262,144 x 640 unembedding), hours on 2 CPU cores. On CPU the loss is therefore
taken over a RESTRICTED vocabulary by default: the union, over :data:`VOCAB_SAMPLE`
training tokens (evenly spaced), of each token's :data:`VOCAB_TOP` most probable final
tokens; both distributions are renormalised over that set (a softmax of the restricted
logits). The set's size and the final mass it covers (mean over the sampled tokens) are
recorded. On a GPU the whole vocabulary is used (``vocab="auto"``); ``vocab="full"`` forces
it anywhere (the tiny test model has 31 tokens). Fidelity is always measured over the
whole vocabulary (:mod:`explorer.lens.fidelity`).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np

from explorer.core.types import Progress
from explorer.errors import ExplorerError
from explorer.lens.kl_settings import VOCAB_SAMPLE, VOCAB_TOP, KLSettings, check_settings
from explorer.lens.learned import Translator, spaced


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Readout:
    """The frozen logit-lens readout (final norm, unembedding rows ``vocab`` or all, softcap)."""

    def __init__(self, anat, model, vocab: np.ndarray | None, dev: str):
        import torch

        if anat.unembed is None or anat.final_norm is None:
            raise ExplorerError(f"{anat.architecture}: a learned lens needs a final norm and an unembedding")
        self.norm = copy.deepcopy(anat.final_norm).to(dev).float().requires_grad_(False)
        w, bias = anat.unembed.weight.detach(), getattr(anat.unembed, "bias", None)
        idx = None if vocab is None else torch.from_numpy(vocab).long()
        self.w = (w if idx is None else w[idx]).to(dev).float()
        self.bias = None if bias is None else (bias.detach() if idx is None else bias.detach()[idx]).to(dev).float()
        self.model = model

    def logits(self, h):
        from explorer.models.capture import softcap

        out = self.norm(h) @ self.w.T
        if self.bias is not None:
            out = out + self.bias
        return softcap(self.model, out)

    def logprobs(self, h):
        import torch

        return torch.log_softmax(self.logits(h), dim=-1)


def restricted_vocab(anat, model, last: np.ndarray, rows: np.ndarray, progress: Progress | None = None):
    """(token ids, mean final mass covered): the union of the top :data:`VOCAB_TOP` final
    tokens of up to :data:`VOCAB_SAMPLE` training rows of ``last`` (the last layer's states);
    the mass is exp(logsumexp over the set - logsumexp over all) averaged over those rows."""
    import torch

    sample = spaced(rows, VOCAB_SAMPLE)
    full = Readout(anat, model, None, "cpu")
    chosen, lse, states = [], [], []
    with torch.inference_mode():
        for start in range(0, len(sample), 64):
            h = torch.from_numpy(np.asarray(last[sample[start : start + 64]], dtype=np.float32))
            z = full.logits(h)
            chosen.append(z.topk(min(VOCAB_TOP, z.shape[1]), dim=-1).indices.flatten())
            lse.append(torch.logsumexp(z, dim=-1))
            states.append(h)
            if progress:
                progress("tokens read for the vocabulary", min(start + 64, len(sample)), len(sample))
        vocab = torch.unique(torch.cat(chosen)).numpy().astype(np.int64)
        part = Readout(anat, model, vocab, "cpu").logits(torch.cat(states))
        mass = float((torch.logsumexp(part, dim=-1) - torch.cat(lse)).exp().mean())
    return vocab, mass


def _batch(layers: Sequence[np.ndarray], rows: np.ndarray, dev: str):
    """(L+1, n, d) float32 tensor of ``rows`` (sorted, for the memory maps) at every layer."""
    import torch

    idx = np.sort(rows)
    return torch.from_numpy(np.stack([np.asarray(x[idx], dtype=np.float32) for x in layers])).to(dev)


def kl_loss(readout: Readout, A, b, h):
    """Mean over layers l < L and tokens of KL(final || lens) in nats; ``h``: (L+1, n, d)."""
    import torch

    with torch.no_grad():
        target = readout.logprobs(h[-1])
    pred = torch.einsum("lnd,lde->lne", h[:-1], A) + b[:, None, :]
    lens = readout.logprobs(pred)
    return (target.exp() * (target - lens)).sum(-1).mean()


def train_kl(anat, model, layers: Sequence[np.ndarray], train: np.ndarray, init: Translator, s: KLSettings,
             progress: Progress | None = None) -> tuple[Translator, dict]:
    """The ``kl`` translator from ``init``: ``s.steps`` Adam steps on batches of ``s.batch``
    training rows drawn with ``s.seed``. Returns it and what to record (vocabulary, losses)."""
    import torch

    check_settings(s)
    if len(train) == 0:
        raise ExplorerError("no training states for the kl lens")
    dev = device()
    full = s.vocab == "full" or (s.vocab == "auto" and dev == "cuda")
    vocab, mass = (None, 1.0) if full else restricted_vocab(anat, model, layers[-1], train, progress)
    readout = Readout(anat, model, vocab, dev)
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    A = torch.tensor(init.A, device=dev, requires_grad=True)
    b = torch.tensor(init.b, device=dev, requires_grad=True)
    opt = torch.optim.Adam([A, b], lr=s.lr)
    losses = []
    for step in range(s.steps):
        h = _batch(layers, rng.choice(train, size=min(s.batch, len(train)), replace=False), dev)
        loss = kl_loss(readout, A, b, h)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) / math.log(2))
        if progress:
            progress("kl steps", step + 1, s.steps)
    out = Translator("kl", A.detach().cpu().numpy(), b.detach().cpu().numpy(), init.alphas)
    info = {"vocab": "full" if full else "restricted", "vocab_size": int(readout.w.shape[0]), "vocab_mass": round(mass, 4),
            "vocab_rule": None if full else f"union of the top {VOCAB_TOP} final tokens of {min(len(train), VOCAB_SAMPLE)} training tokens",
            "device": dev, "steps": s.steps, "lr": s.lr, "batch": s.batch, "seed": s.seed, "init": s.init,
            "train_kl_first": float(f"{np.mean(losses[:10]):.4g}"), "train_kl_last": float(f"{np.mean(losses[-10:]):.4g}")}
    return out, info


def identity(n_layers: int, d: int) -> Translator:
    return Translator("identity", np.tile(np.eye(d, dtype=np.float32), (n_layers, 1, 1)),
                      np.zeros((n_layers, d), np.float32), np.zeros(n_layers))
