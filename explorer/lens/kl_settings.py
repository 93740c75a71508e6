"""Settings of the ``kl`` learned lens (:mod:`explorer.lens.tuned`), light to import (no
numpy or torch): the CLI reads its defaults for ``--help``."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.errors import ExplorerError

VOCABS = ("auto", "full", "restricted")
INITS = ("linear", "identity")
VOCAB_TOP = 16  # each sampled token's top final tokens enter the restricted vocabulary
VOCAB_SAMPLE = 1024  # training tokens whose final distributions choose it
STEPS, LR, BATCH = 300, 1e-3, 64


@dataclass(frozen=True)
class KLSettings:
    steps: int = STEPS
    lr: float = LR
    batch: int = BATCH
    seed: int = 0
    vocab: str = "auto"
    init: str = "linear"


def check_settings(s: KLSettings) -> None:
    if s.steps < 1:
        raise ExplorerError(f"--steps must be at least 1 (got {s.steps})")
    if not (0 < s.lr <= 1):
        raise ExplorerError(f"--lr must be in (0, 1] (got {s.lr})")
    if s.batch < 1:
        raise ExplorerError(f"--batch must be at least 1 (got {s.batch})")
    if s.vocab not in VOCABS:
        raise ExplorerError(f"unknown --vocab {s.vocab!r}; choose one of {', '.join(VOCABS)}")
    if s.init not in INITS:
        raise ExplorerError(f"unknown --init {s.init!r}; choose linear or identity")
