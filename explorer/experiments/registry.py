"""The experiments a user can run, by name (modules imported on demand)."""

from __future__ import annotations

import importlib
from typing import Any

from explorer.errors import ExplorerError

MODULES = {
    "counting": "explorer.experiments.counting",
    "concepts": "explorer.experiments.concepts",
    "word2vec": "explorer.experiments.word2vec",
    "cooccurrence": "explorer.experiments.cooccurrence",
    "llm-counting": "explorer.experiments.llm_counting",
}


def names() -> list[str]:
    return list(MODULES)


def get(name: str) -> Any:
    """The experiment called ``name``: a built-in one, or your own as ``module:ATTR``
    (any importable module whose ``ATTR`` follows :mod:`explorer.experiments.base`)."""
    if name in MODULES:
        return importlib.import_module(MODULES[name]).EXPERIMENT
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr or "EXPERIMENT")
        except (ImportError, AttributeError) as exc:
            raise ExplorerError(f"cannot load experiment {name!r}: {exc}") from None
    raise ExplorerError(f"unknown experiment {name!r}; experiments: {', '.join(MODULES)} (or module:ATTR for your own)")
