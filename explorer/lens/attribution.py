"""Language attribution per layer with the logit lens (after Wendler et al., 2024).

For each prompt only the last position is decoded: per layer the hidden state goes
through the final norm and the unembedding, one (layers x vocabulary) matrix per prompt,
never a (layers x positions x vocabulary) tensor. Per layer and entry:

* ``p_target`` / ``p_english``: probability mass on the target word's / the English
  word's token set (see :mod:`explorer.lens.words`);
* ``entropy`` of the next-token distribution, in bits;
* ``energy``: token energy, (|U n(h)|^2 / |n(h)|^2) / (|U|_F^2 / d) with n the final
  norm: how strongly the normed state points into the directions the unembedding reads,
  1 for a random direction (the paper's idea, normalised our way);
* the top-1 token.

Means come with 95% confidence intervals over entries (1.96 standard errors).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from explorer.core.types import Progress
from explorer.errors import ExplorerError
from explorer.lens.tasks import PromptItem
from explorer.lens.words import TokenSets


@dataclass(frozen=True)
class LayerStats:
    layer: int
    p_target: float
    p_target_ci: float
    p_english: float
    p_english_ci: float
    entropy: float
    energy: float
    top1: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LensResult:
    task: str
    model: str
    config: dict
    entries: int
    dropped: dict
    accuracy: float  # top-1 starts an accepted form of the target
    layers: list[LayerStats]
    per_entry: list[dict] = field(default_factory=list)
    run_id: int | None = None
    accuracy_first: float | None = None  # counting only the form shown in prompts

    def to_dict(self, entries: bool = False) -> dict:
        d = {
            "run_id": self.run_id, "task": self.task, "model": self.model, "config": self.config,
            "entries": self.entries, "dropped": self.dropped, "accuracy": self.accuracy,
            "accuracy_first": self.accuracy_first,
            "layers": [
                {"layer": s.layer, "p_target": s.p_target, "p_english": s.p_english, "entropy": s.entropy,
                 "energy": s.energy, "p_target_ci": s.p_target_ci, "p_english_ci": s.p_english_ci, "top1": s.top1}
                for s in self.layers
            ],
        }
        if entries:
            d["per_entry"] = self.per_entry
        return d


def select(items: Sequence[PromptItem], vocab: TokenSets, strategy: str, target_is_english: bool = False):
    """Token sets per item; drop empty and overlapping ones. Returns (kept, dropped counts)."""
    kept, dropped = [], Counter()  # (item, target set, English set, correct top-1s, correct top-1s for the shown form)
    for it in items:
        tgt = vocab.token_set_any(it.targets, strategy)
        eng = vocab.token_set_any(it.englishes, strategy)
        if not tgt or not eng:
            dropped["not representable" if strategy != "single" else "not a single token"] += 1
            continue
        if not target_is_english and tgt & eng:
            dropped["overlapping token sets"] += 1
            continue
        kept.append((it, tgt, eng, vocab.correct_tokens(it.targets, strategy), vocab.correct_tokens(it.targets[:1], strategy)))
    return kept, dict(dropped)


def _english_task(config: dict) -> bool:
    return config.get("to") == "en" or config.get("lang") == "en"


def check_entries(model: str, items: Sequence[PromptItem], vocab: TokenSets, strategy: str, config: dict):
    """(kept, dropped) as :func:`select` gives them; no survivor is an error. Needs the tokenizer
    alone, so callers can check a word list before the weights load."""
    kept, dropped = select(items, vocab, strategy, _english_task(config))
    if not kept:
        raise ExplorerError(f"no entries survive for {model} with strategy {strategy!r} (dropped: {dropped})")
    return kept, dropped


def attribute(runner, items: Sequence[PromptItem], vocab: TokenSets, *, task: str, strategy: str, config: dict,
              labels: Callable[[list[int]], dict[int, str]], batch_size: int = 8,
              progress: Progress | None = None) -> LensResult:
    """Run the surviving entries through ``runner`` in batches and read each one's last
    position at every layer with the logit lens; ``labels(ids)`` names the top-1 tokens."""
    import torch

    kept, dropped = check_entries(runner.row.name, items, vocab, strategy, config)
    decode = _lens_decoder(runner)
    curves = _Curves.empty(len(kept), runner.anatomy.n_layers + 1)
    per_entry = []
    if progress:
        progress("entries", 0, len(kept))
    for start in range(0, len(kept), batch_size):
        chunk = kept[start : start + batch_size]
        states = _last_states(runner, [it.prompt for it, *_ in chunk])
        with torch.inference_mode():
            for b, (entry, h) in enumerate(zip(chunk, states)):
                per_entry.append(curves.read(start + b, entry, *decode(h)))
        if progress:
            progress("entries", min(start + batch_size, len(kept)), len(kept))
    names = labels(sorted(set(curves.top1.flatten().tolist())))
    for e in per_entry:
        e["top1_last_token"] = names.get(e["top1_last"], str(e["top1_last"]))
    n = len(kept)
    accuracy = sum(e["correct"] for e in per_entry) / n
    accuracy_first = sum(e["correct_first"] for e in per_entry) / n
    return LensResult(task, runner.row.name, config, n, dropped, accuracy, curves.layer_stats(names), per_entry,
                      accuracy_first=accuracy_first)


def _lens_decoder(runner):
    """``decode(h)`` for the (L+1, d) states of one position: (energy, entropy in bits,
    next-token probabilities) per layer, through the final norm and the unembedding."""
    import torch

    anat = runner.anatomy
    if anat.final_norm is None or anat.unembed is None:
        raise ExplorerError(f"{anat.architecture}: the logit lens needs a final norm and an unembedding; found "
                            f"{'no final norm' if anat.final_norm is None else 'no unembedding'}")
    W = anat.unembed.weight.detach()
    u_fro = float((W.float() ** 2).sum()) / W.shape[1]
    from explorer.models.capture import softcap

    def decode(h):
        normed = anat.final_norm(runner.lens_input(h))
        logits = anat.unembed(normed).float()
        energy = ((logits**2).sum(-1) / (normed**2).sum(-1).clamp_min(1e-30) / u_fro).numpy()
        logp = torch.log_softmax(softcap(runner.model, logits), dim=-1)
        p = logp.exp()
        return energy, (-(p * logp).nan_to_num().sum(-1) / math.log(2)).numpy(), p

    return decode


def _last_states(runner, prompts: list[str]) -> list:
    """Each prompt's last position at every layer, as an (L+1, d) float tensor (one forward pass)."""
    import torch

    from explorer.models.capture import capture, tokenize

    ids = tokenize(runner.tokenizer, prompts, 4096)
    cap = capture(runner.model, runner.anatomy, ids, runner.tokenizer.pad_token_id or 0)
    with torch.inference_mode():
        return [torch.stack([layer[b, len(ids[b]) - 1] for layer in cap.layers]).float() for b in range(len(prompts))]


@dataclass
class _Curves:
    """Per entry (row) and layer (column): p(target), p(English), entropy, energy, top-1 id."""

    pt: np.ndarray
    pe: np.ndarray
    ent: np.ndarray
    energy: np.ndarray
    top1: np.ndarray

    @classmethod
    def empty(cls, entries: int, layers: int) -> _Curves:
        z = np.zeros((entries, layers))
        return cls(z, z.copy(), z.copy(), z.copy(), np.zeros((entries, layers), dtype=np.int64))

    def read(self, row: int, entry: tuple, energy: np.ndarray, entropy: np.ndarray, p) -> dict:
        """Store one entry's curves from its decoded layers; its per-entry record."""
        it, tgt, eng, correct, first = entry
        self.energy[row], self.ent[row] = energy, entropy
        self.pt[row] = p[:, sorted(tgt)].sum(-1).numpy()
        self.pe[row] = p[:, sorted(eng)].sum(-1).numpy()
        self.top1[row] = p.argmax(-1).numpy()
        last = int(self.top1[row, -1])
        return {
            "concept": it.concept, "target": it.target, "english": it.english, "prompt": it.prompt,
            "top1_last": last, "accepted": list(it.targets), "correct": last in correct, "correct_first": last in first,
            "n_target_tokens": len(tgt), "n_english_tokens": len(eng),
            "p_target": self.pt[row].tolist(), "p_english": self.pe[row].tolist(),
        }

    def layer_stats(self, names: dict[int, str]) -> list[LayerStats]:
        """Means over entries per layer, with 95% confidence intervals (1.96 standard errors)."""
        n = self.pt.shape[0]

        def ci(x: np.ndarray) -> np.ndarray:
            return 1.96 * x.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(x.shape[1])

        pt_ci, pe_ci = ci(self.pt), ci(self.pe)  # once, not once per layer
        return [
            LayerStats(
                layer, float(self.pt[:, layer].mean()), float(pt_ci[layer]), float(self.pe[:, layer].mean()),
                float(pe_ci[layer]), float(self.ent[:, layer].mean()), float(self.energy[:, layer].mean()),
                names.get(Counter(self.top1[:, layer].tolist()).most_common(1)[0][0], "?"),
            )
            for layer in range(self.pt.shape[1])
        ]
