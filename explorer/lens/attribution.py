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
    import torch

    from explorer.models.capture import capture, tokenize

    kept, dropped = check_entries(runner.row.name, items, vocab, strategy, config)
    anat, model = runner.anatomy, runner.model
    if anat.final_norm is None or anat.unembed is None:
        raise ExplorerError(f"{anat.architecture}: the logit lens needs a final norm and an unembedding; found "
                            f"{'no final norm' if anat.final_norm is None else 'no unembedding'}")
    W = anat.unembed.weight.detach()
    u_fro = float((W.float() ** 2).sum()) / W.shape[1]
    cap_val = getattr(model.config, "final_logit_softcapping", None)
    n_layers = anat.n_layers + 1
    pt = np.zeros((len(kept), n_layers))
    pe = np.zeros_like(pt)
    ent = np.zeros_like(pt)
    energy = np.zeros_like(pt)
    top1 = np.zeros((len(kept), n_layers), dtype=np.int64)
    per_entry = []
    pad = runner.tokenizer.pad_token_id or 0
    if progress:
        progress("entries", 0, len(kept))
    for start in range(0, len(kept), batch_size):
        chunk = kept[start : start + batch_size]
        ids = tokenize(runner.tokenizer, [it.prompt for it, *_ in chunk], 4096)
        cap = capture(model, anat, ids, pad)
        with torch.inference_mode():
            for b, (it, tgt, eng, correct, first) in enumerate(chunk):
                last = len(ids[b]) - 1
                h = torch.stack([layer[b, last] for layer in cap.layers]).float()  # (L+1, d)
                normed = anat.final_norm(h)
                logits = anat.unembed(normed).float()
                energy[start + b] = ((logits**2).sum(-1) / (normed**2).sum(-1).clamp_min(1e-30) / u_fro).numpy()
                if cap_val:
                    logits = torch.tanh(logits / cap_val) * cap_val
                logp = torch.log_softmax(logits, dim=-1)
                p = logp.exp()
                ent[start + b] = (-(p * logp).nan_to_num().sum(-1) / math.log(2)).numpy()
                pt[start + b] = p[:, sorted(tgt)].sum(-1).numpy()
                pe[start + b] = p[:, sorted(eng)].sum(-1).numpy()
                top1[start + b] = p.argmax(-1).numpy()
                per_entry.append({
                    "concept": it.concept, "target": it.target, "english": it.english, "prompt": it.prompt,
                    "top1_last": int(top1[start + b, -1]),
                    "accepted": list(it.targets),
                    "correct": int(top1[start + b, -1]) in correct,
                    "correct_first": int(top1[start + b, -1]) in first,
                    "n_target_tokens": len(tgt), "n_english_tokens": len(eng),
                    "p_target": pt[start + b].tolist(), "p_english": pe[start + b].tolist(),
                })
        if progress:
            progress("entries", min(start + batch_size, len(kept)), len(kept))
    names = labels(sorted(set(top1.flatten().tolist())))
    for e in per_entry:
        e["top1_last_token"] = names.get(e["top1_last"], str(e["top1_last"]))
    n = len(kept)

    def ci(x: np.ndarray) -> np.ndarray:
        return 1.96 * x.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(x.shape[1])

    pt_ci, pe_ci = ci(pt), ci(pe)  # once, not once per layer
    layers = [
        LayerStats(
            layer, float(pt[:, layer].mean()), float(pt_ci[layer]), float(pe[:, layer].mean()), float(pe_ci[layer]),
            float(ent[:, layer].mean()), float(energy[:, layer].mean()),
            names.get(Counter(top1[:, layer].tolist()).most_common(1)[0][0], "?"),
        )
        for layer in range(n_layers)
    ]
    accuracy = sum(e["correct"] for e in per_entry) / n
    accuracy_first = sum(e["correct_first"] for e in per_entry) / n
    return LensResult(task, runner.row.name, config, n, dropped, accuracy, layers, per_entry, accuracy_first=accuracy_first)
