"""Comparisons: the comparisons and comparison_results tables (``explorer compare``).

A comparison is stored as one row (what was asked, of which models) and one row per
model and item, in one transaction; its id comes from the ``seq_comparisons`` sequence.
Non-finite cosines are stored as NULL.
"""

from __future__ import annotations

import json
import math


def record_comparison(catalog, comparison) -> int:
    """Store ``comparison`` (a Comparison: kind, source, expect, method, vectors, models,
    outcomes) and its per-model results; returns the new comparison id."""
    c = comparison
    with catalog.write() as con:
        (cid,) = con.execute(
            "INSERT INTO comparisons (comparison_id, kind, source, expect, method, vectors, models) "
            "VALUES (nextval('seq_comparisons'), ?, ?, ?, ?, ?, ?) RETURNING comparison_id",
            [c.kind, c.source, c.expect, c.method, c.vectors, list(c.models)],
        ).fetchone()
        con.executemany(
            "INSERT INTO comparison_results (comparison_id, model, item, expression, expected, rank_excluded, rank_kept, "
            "top, offset_cosine, reverse_cosine, correct, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[cid, o.model, o.item, o.expression, o.expected, o.rank_excluded, o.rank_kept, json.dumps(list(o.top)),
              _finite(o.offset_cosine), _finite(o.reverse_cosine), o.correct, o.note] for o in c.outcomes],
        )
    return int(cid)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
