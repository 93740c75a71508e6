"""Run a stored model on a text and hand back its hidden states, per layer and position.

Importing this module is light (no numpy, duckdb or torch): the checks before a model
loads (:func:`check_position`) serve front ends that must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.errors import ExplorerError

if TYPE_CHECKING:
    import numpy as np

    from explorer.store.catalog import ModelRow


@dataclass
class TextStates:
    text: str
    token_ids: list[int]
    tokens: list[str]
    layers: np.ndarray  # (n_layers + 1, seq, d) float32, layer 0 = embedding output

    def position(self, position: int | None) -> int:
        """Resolve a position: None = last token, negative = from the end."""
        n = len(self.token_ids)
        p = n - 1 if position is None else (position + n if position < 0 else position)
        if not 0 <= p < n:
            raise ExplorerError(f"position {position} is outside 0..{n - 1} ({n} tokens: {self.tokens})")
        return p


def token_count(model_row: ModelRow, text: str, max_tokens: int = 512) -> int | None:
    """How many tokens :meth:`ModelRunner.run` will see for ``text`` (special tokens included),
    from the model's ``tokenizer.json`` alone: no weights, no transformers. None when the
    directory has no such file."""
    path = Path(model_row.model_dir) / "tokenizer.json" if model_row.model_dir else None
    if path is None or not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        ids = Tokenizer.from_file(str(path)).encode(text, add_special_tokens=True).ids
    except Exception:  # a tokenizer file this library cannot read: the run checks later
        return None
    return min(len(ids), max_tokens)


def check_position(model_row: ModelRow, text: str, position: int | None) -> None:
    """The one-line error :meth:`TextStates.position` would give, before any weights load."""
    if not text:
        raise ExplorerError("empty text")
    n = token_count(model_row, text) if position is not None else None
    if n is not None and not -n <= position < n:
        raise ExplorerError(f"position {position} is outside {-n}..{n - 1}: the prompt is {n} tokens for {model_row.name}")


def token_counts(model_row: ModelRow, texts: list[str], max_tokens: int = 512) -> list[int] | None:
    """:func:`token_count` for many texts at once (one tokenizer load); None without ``tokenizer.json``."""
    path = Path(model_row.model_dir) / "tokenizer.json" if model_row.model_dir else None
    if path is None or not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        encoded = Tokenizer.from_file(str(path)).encode_batch(list(texts), add_special_tokens=True)
    except Exception:  # a tokenizer file this library cannot read
        return None
    return [min(len(e.ids), max_tokens) for e in encoded]


def stored_dir(model_row: ModelRow) -> Path:
    """The directory of a model's converted weights and tokenizer; an error when none is stored."""
    if not model_row.model_dir:
        raise ExplorerError(f"model {model_row.name} has no stored model directory; re-run `explorer export`")
    return Path(model_row.model_dir)


class ModelRunner:
    def __init__(self, model_row: ModelRow, tokenizer=None):
        from explorer.models import surgery
        from explorer.models.loading import load_model

        self.row = model_row
        self.model, self.tokenizer = load_model(stored_dir(model_row), tokenizer=tokenizer)
        self.anatomy = surgery.anatomy(self.model)
        self.translator = None  # a learned lens (explorer.lens.learned.Translator); None: the logit lens

    def lens_input(self, hidden, translator=None):
        """(L+1, d) torch states of one position -> what the lens decodes: themselves for the
        logit lens, each layer's translation for a learned lens (the last layer unchanged).
        ``translator``: this call's learned lens (a runner shared between callers keeps its own)."""
        tr = translator if translator is not None else self.translator
        return hidden if tr is None else tr.apply(hidden)

    def run(self, text: str, max_tokens: int = 512) -> TextStates:
        import numpy as np

        from explorer.models.capture import capture, tokenize

        if not text:
            raise ExplorerError("empty text")
        ids = tokenize(self.tokenizer, [text], max_tokens)[0]
        cap = capture(self.model, self.anatomy, [ids])
        layers = np.stack([layer[0].float().numpy() for layer in cap.layers])
        tokens = self.tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return TextStates(text, ids, tokens, layers)

    def lens_probs(self, hidden: np.ndarray, translator=None):
        """Softmax of the lens for one position's (L+1, d) states, one row per layer ->
        (L+1, vocab) torch tensor (with a learned lens, each layer's row is translated)."""
        import numpy as np
        import torch

        from explorer.models.capture import logits

        with torch.inference_mode():
            h = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))
            out = logits(self.anatomy, self.model, self.lens_input(h, translator))
            return torch.softmax(out.float(), dim=-1)

    def final_normed(self, hidden: np.ndarray) -> np.ndarray:
        """final_norm(h) for (n, d) hidden states, as numpy: the vectors the logit lens decodes."""
        import numpy as np
        import torch

        norm = self.anatomy.final_norm
        if norm is None:
            raise ExplorerError(f"{self.anatomy.architecture}: no final norm found; cannot place states as the lens reads them")
        with torch.inference_mode():
            return norm(torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))).float().numpy()
