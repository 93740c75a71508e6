"""Small synthetic corpora for the embedding-training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def topic_corpus(path: Path, topics: int = 12, size: int = 5, lines: int = 1500, seed: int = 0) -> list[list[str]]:
    """Lines of 8 words from one topic: words of a topic always co-occur, never across topics."""
    rng = np.random.default_rng(seed)
    vocab = [[f"{chr(97 + t)}{chr(97 + k)}x" for k in range(size)] for t in range(topics)]
    text = [" ".join(rng.choice(vocab[rng.integers(topics)], 8)) for _ in range(lines)]
    path.write_text("\n".join(text) + "\n")
    return vocab
