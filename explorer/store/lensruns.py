"""Lens runs: the lens_runs, lens_layers and lens_entries tables.

A language-attribution run (see :mod:`explorer.lens.attribution`) is stored as its
configuration, one row per layer and one row per entry, in one transaction; its id comes
from the ``seq_lens_runs`` sequence.
"""

from __future__ import annotations

import json


def record_lens_run(catalog, model_id: int, result) -> int:
    """Store ``result`` (a LensResult: task, config, entries, dropped, accuracy, accuracy_first,
    layers, per_entry) for ``model_id``; returns the new run id."""
    with catalog.write() as con:
        (run_id,) = con.execute(
            "INSERT INTO lens_runs (run_id, model_id, task, config, entries, dropped, accuracy, accuracy_first) "
            "VALUES (nextval('seq_lens_runs'), ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
            [model_id, result.task, json.dumps(result.config), result.entries, json.dumps(result.dropped),
             result.accuracy, result.accuracy_first],
        ).fetchone()
        con.executemany(
            "INSERT INTO lens_layers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, s.layer, s.p_target, s.p_target_ci, s.p_english, s.p_english_ci, s.entropy, s.energy, s.top1]
             for s in result.layers],
        )
        con.executemany(
            "INSERT INTO lens_entries (run_id, entry, concept, target, english, prompt, top1_last, correct, p_target, "
            "p_english, accepted, correct_first) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, i, e["concept"], e["target"], e["english"], e["prompt"], e["top1_last_token"], e["correct"],
              e["p_target"], e["p_english"], e["accepted"], e["correct_first"]] for i, e in enumerate(result.per_entry)],
        )
    return int(run_id)
