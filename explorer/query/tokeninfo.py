"""Describe every vocabulary entry: decoded text, word-start marker, script, flags."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

_BYTE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_MARKERS = ("▁", "Ġ")
_SCRIPT_PREFIXES = (
    ("CJK", "cjk"),
    ("HIRAGANA", "kana"),
    ("KATAKANA", "kana"),
    ("HANGUL", "hangul"),
    ("LATIN", "latin"),
    ("CYRILLIC", "cyrillic"),
    ("GREEK", "greek"),
    ("ARABIC", "arabic"),
    ("HEBREW", "hebrew"),
    ("DEVANAGARI", "devanagari"),
    ("THAI", "thai"),
    ("BENGALI", "bengali"),
    ("TAMIL", "tamil"),
    ("GEORGIAN", "georgian"),
    ("ARMENIAN", "armenian"),
)


def char_script(ch: str) -> str | None:
    """Script of a letter, None for a non-letter."""
    cat = unicodedata.category(ch)
    if not cat.startswith("L") and not cat.startswith("M"):
        return None
    if cat.startswith("M"):
        return None  # combining marks follow their base letter
    name = unicodedata.name(ch, "")
    for prefix, script in _SCRIPT_PREFIXES:
        if name.startswith(prefix):
            return script
    if "IDEOGRAPH" in name:
        return "cjk"
    return "other"


def script_of(text: str) -> str:
    """latin | cjk | cyrillic | ... for letters; digit, punct, space, mixed or other otherwise."""
    scripts = {s for s in map(char_script, text) if s is not None}
    if len(scripts) == 1:
        return scripts.pop()
    if len(scripts) > 1:
        return "mixed"
    stripped = text.strip()
    if not stripped:
        return "space" if text else "other"
    if all(unicodedata.category(c) == "Nd" for c in stripped):
        return "digit"
    if all(unicodedata.category(c)[0] in "PSN" for c in stripped):
        return "punct"
    return "other"


def token_columns(tokenizer: Any, n_rows: int) -> dict[str, np.ndarray]:
    """Columns of the tokens table for rows 0..n_rows-1 of an embedding matrix.

    Rows past the tokenizer's vocabulary (padding rows some models add) get
    ``<row N>`` as raw text and the flag ``is_special``.
    """
    n_vocab = len(tokenizer)
    ids = list(range(min(n_rows, n_vocab)))
    raws = tokenizer.convert_ids_to_tokens(ids)
    texts = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for tid, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            special.add(int(tid))
    raw_col, text_col, lead, script, is_special, is_byte = [], [], [], [], [], []
    for i in range(n_rows):
        raw = raws[i] if i < len(ids) and raws[i] is not None else f"<row {i}>"
        text = texts[i] if i < len(ids) else ""
        byte = bool(_BYTE.match(raw))
        spec = i in special or i >= len(ids)
        raw_col.append(raw)
        text_col.append(text)
        lead.append(raw.startswith(_MARKERS) or (text.startswith(" ") and not byte))
        script.append("special" if spec else ("byte" if byte else script_of(text)))
        is_special.append(spec)
        is_byte.append(byte)
    return {
        "token_id": np.arange(n_rows, dtype=np.int32),
        "raw": np.array(raw_col, dtype=object),
        "text": np.array(text_col, dtype=object),
        "leading_space": np.array(lead, dtype=bool),
        "script": np.array(script, dtype=object),
        "is_special": np.array(is_special, dtype=bool),
        "is_byte": np.array(is_byte, dtype=bool),
    }
