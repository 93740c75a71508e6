"""Types shared by every layer: progress callbacks and the default model's name."""

from __future__ import annotations

from typing import Callable

DEFAULT_MODEL = "gemma3-270m"

Report = Callable[[str], None]
"""A stage message for the user ("loading gemma3-270m (5-80 s)")."""

Progress = Callable[[str, int, int], None]
"""Progress of long work: ``(label, done, total)``."""
