"""Experiment sweeps in the catalog: tables ``sweeps``, ``runs``, ``metrics`` and
``experiment_rows`` (migration 6); ids from the sequences ``seq_sweeps`` and ``seq_runs``.

Only the sweep's driver writes here: a sweep row when it opens, a run row before a point
starts, metrics while it trains, the run's outcome as soon as it ends, the sweep's status
and summary last. Values stored as JSON are passed in as Python objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from explorer.store.catalog import Catalog


@dataclass(frozen=True)
class SweepRow:
    """A sweep with its runs counted by status (``status`` as stored)."""

    sweep_id: int
    experiment: str
    preset: str | None
    status: str
    host: str | None
    pid: int | None
    started: Any  # datetime
    finished: Any  # datetime or None
    finished_runs: int
    running_runs: int
    other_runs: int  # failed, cancelled or interrupted
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class RunRow:
    run_id: int
    point: str
    status: str
    summary: dict[str, Any] | None
    last_step: int | None  # the last step a metric was recorded at
    error: str | None


@dataclass(frozen=True)
class NewSweep:
    """What a sweep row records about the sweep and its driver."""

    experiment: str
    preset: str | None
    config: dict[str, Any]  # the base configuration (points override it)
    key: str  # hash of experiment + config: a resumed sweep is found by it
    host: str
    pid: int


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


class SweepStore:
    """The repository of sweeps and their runs, over one catalog."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # -- the driver's writes -------------------------------------------------------
    def open(self, sweep: NewSweep, resume: bool = False) -> tuple[int, set[str]]:
        """A new sweep row; or (``resume``) the latest sweep with the same key, running
        again here, with the points it finished. Its runs left 'running' by a killed
        driver become 'interrupted'."""
        with self.catalog.write() as con:
            found = con.execute("SELECT sweep_id FROM sweeps WHERE key = ? ORDER BY sweep_id DESC LIMIT 1",
                                [sweep.key]).fetchone() if resume else None
            if found:
                sweep_id = found[0]
                done = {r[0] for r in con.execute(
                    "SELECT point FROM runs WHERE sweep_id = ? AND status = 'finished'", [sweep_id]).fetchall()}
                con.execute("UPDATE runs SET status = 'interrupted' WHERE sweep_id = ? AND status = 'running'",
                            [sweep_id])
                con.execute("UPDATE sweeps SET status = 'running', host = ?, pid = ?, finished = NULL WHERE sweep_id = ?",
                            [sweep.host, sweep.pid, sweep_id])
                return sweep_id, done
            sweep_id = con.execute(
                "INSERT INTO sweeps (sweep_id, experiment, preset, config, key, status, host, pid) "
                "VALUES (nextval('seq_sweeps'), ?, ?, ?, ?, 'running', ?, ?) RETURNING sweep_id",
                [sweep.experiment, sweep.preset, json.dumps(sweep.config), sweep.key, sweep.host, sweep.pid],
            ).fetchone()[0]
            return sweep_id, set()

    def start_run(self, sweep_id: int, experiment: str, point: str, config: dict[str, Any], seed: int) -> int:
        """A 'running' row for one point; its run id."""
        with self.catalog.write() as con:
            return con.execute(
                "INSERT INTO runs (run_id, sweep_id, experiment, point, config, seed, status) "
                "VALUES (nextval('seq_runs'), ?, ?, ?, ?, ?, 'running') RETURNING run_id",
                [sweep_id, experiment, point, json.dumps(config), seed],
            ).fetchone()[0]

    def add_metrics(self, rows: Sequence[tuple[int, int, str, float]]) -> None:
        """(run_id, step, name, value) rows."""
        if rows:
            with self.catalog.write() as con:
                con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", list(rows))

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any] | None, error: str | None,
                   rows: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        """A run's outcome and its extra (table, row) rows, in one transaction."""
        extra = [(run_id, tbl, json.dumps(row)) for tbl, row in rows]
        with self.catalog.write() as con:
            if extra:
                con.executemany("INSERT INTO experiment_rows VALUES (?, ?, ?)", extra)
            con.execute("UPDATE runs SET status = ?, finished = current_timestamp, summary = ?, error = ? WHERE run_id = ?",
                        [status, _json(summary), error, run_id])

    def close(self, sweep_id: int, status: str, summary: dict[str, Any] | None) -> None:
        """The sweep's final status and sweep-level summary."""
        with self.catalog.write() as con:
            con.execute("UPDATE sweeps SET status = ?, finished = current_timestamp, summary = ? WHERE sweep_id = ?",
                        [status, _json(summary), sweep_id])

    # -- reads ------------------------------------------------------------------
    def finished_runs(self, sweep_id: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(config, summary) of the sweep's finished runs, in run order."""
        rows = self.catalog.query(
            "SELECT config, summary FROM runs WHERE sweep_id = ? AND status = 'finished' ORDER BY run_id", [sweep_id])
        return [(json.loads(c), _loads(s) or {}) for c, s in rows]

    def sweeps(self, sweep_id: int | None = None, limit: int = 20) -> list[SweepRow]:
        """The latest ``limit`` sweeps (or sweep ``sweep_id``), newest first; none without a catalog."""
        if not self.catalog.exists():
            return []
        where, params = ("WHERE s.sweep_id = ?", [sweep_id]) if sweep_id is not None else ("", [])
        rows = self.catalog.query(
            f"""SELECT s.sweep_id, s.experiment, s.preset, s.status, s.host, s.pid, s.started, s.finished,
                       count(r.run_id) FILTER (WHERE r.status = 'finished'),
                       count(r.run_id) FILTER (WHERE r.status = 'running'),
                       count(r.run_id) FILTER (WHERE r.status IN ('failed', 'cancelled', 'interrupted')), s.summary
                FROM sweeps s LEFT JOIN runs r USING (sweep_id) {where}
                GROUP BY ALL ORDER BY s.sweep_id DESC LIMIT {int(limit)}""", params)
        return [SweepRow(*r[:-1], _loads(r[-1])) for r in rows]

    def runs(self, sweep_id: int) -> list[RunRow]:
        """The sweep's runs in run order, each with the last step it recorded a metric at."""
        rows = self.catalog.query(
            "SELECT r.run_id, r.point, r.status, r.summary, (SELECT max(step) FROM metrics m WHERE m.run_id = r.run_id), "
            "r.error FROM runs r WHERE sweep_id = ? ORDER BY run_id", [sweep_id])
        return [RunRow(run_id, point, status, _loads(summary), step, error)
                for run_id, point, status, summary, step, error in rows]


__all__ = ["NewSweep", "RunRow", "SweepRow", "SweepStore"]
