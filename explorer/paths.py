"""Where data lives. One data root holds the catalog, vector sets and model caches."""

from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "EXPLORER_HOME"
ENV_MODEL_CACHE = "EXPLORER_MODEL_CACHE"


def default_root() -> Path:
    """``$EXPLORER_HOME``, else ``indexes/`` of a source checkout, else ``./indexes``."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "indexes"
    if checkout.is_dir():
        return checkout
    return Path.cwd() / "indexes"


def model_cache_dir(root: Path) -> Path:
    """Converted models (safetensors + tokenizer.json); ``$EXPLORER_MODEL_CACHE`` overrides."""
    env = os.environ.get(ENV_MODEL_CACHE)
    return Path(env).expanduser() if env else root / "models"
