"""Searching sweeps: the bracket-and-bisect search of a threshold and the runner that adds points
as results come in (in this process, in worker processes, on Ray, resumed after a cancel)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.experiments import runner, threshold
from explorer.experiments.threshold import (
    Bounds,
    crossing,
    linear_fit,
    next_probe,
    simulate,
)
from explorer.services import sweeps
from explorer.services.engine import Engine
from explorer.store.catalog import Catalog

SEARCH = "fake_experiment:SEARCH"
TESTS = Path(__file__).resolve().parent
# curve 0 is above 0.5 up to x = 5, curve 1 up to x = 10 (tests/fake_experiment.py); from 4, doubling, then bisecting
PROBES = {0: [4, 8, 6, 5], 1: [4, 8, 16, 12, 10, 11]}


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if str(TESTS) not in sys.path:
        monkeypatch.syspath_prepend(str(TESTS))


def run_search(root: Path, options=sweeps.RunOptions(), settings=None, on_event=None, resume=False):
    plan = runner.make_plan(SEARCH, None, settings or {})
    opts = sweeps.RunOptions(options.workers, options.ray, resume)
    return sweeps.start(Engine(root), plan, opts, on_event)


def probes(result) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in result.runs:
        out.setdefault(r["summary"]["c"], []).append(r["summary"]["x"])
    return out


# -- the search itself ---------------------------------------------------------------------
def test_next_probe_brackets_up_then_bisects_to_the_tolerance():
    b = Bounds(lo=2, hi=100, start=8, bracket=1.5, tolerance=0.1)
    assert next_probe([], 0.8, b) == 8
    assert next_probe([(8, 0.9)], 0.8, b) == 12  # up by 1.5
    assert next_probe([(8, 0.9), (12, 0.85)], 0.8, b) == 18
    assert next_probe([(8, 0.9), (12, 0.85), (18, 0.3)], 0.8, b) == 15  # bisect 12..18
    assert next_probe([(8, 0.9), (12, 0.85), (18, 0.3), (15, 0.5)], 0.8, b) == 13
    # 13 passes: 13..15 is 2 wide, more than max(1, 0.1 * 13): once more
    assert next_probe([(8, 0.9), (12, 0.85), (18, 0.3), (15, 0.5), (13, 0.81)], 0.8, b) == 14
    assert next_probe([(8, 0.9), (12, 0.85), (18, 0.3), (15, 0.5), (13, 0.81), (14, 0.7)], 0.8, b) is None
    wide = Bounds(lo=2, hi=100, start=8, bracket=1.5, tolerance=0.2)  # 13..15 is within 0.2 * 13
    assert next_probe([(8, 0.9), (12, 0.85), (18, 0.3), (15, 0.5), (13, 0.81)], 0.8, wide) is None


def test_next_probe_brackets_down_and_stops_at_the_bounds():
    b = Bounds(lo=2, hi=20, start=8, bracket=2.0, tolerance=0.0)
    assert next_probe([(8, 0.1)], 0.8, b) == 4
    assert next_probe([(8, 0.1), (4, 0.2)], 0.8, b) == 2
    assert next_probe([(8, 0.1), (4, 0.2), (2, 0.5)], 0.8, b) is None  # censored below at lo
    assert next_probe([(8, 0.9), (16, 0.9), (20, 0.95)], 0.8, b) is None  # censored above at hi
    assert next_probe([(8, 0.9), (16, 0.9)], 0.8, b) == 20  # clipped to hi
    assert next_probe([(2, 0.9), (3, 0.1)], 0.8, b) is None  # adjacent integers: nothing between
    assert next_probe([], 0.8, Bounds(5, 20, 40)) == 20  # the start is clipped into the bounds


def test_noise_the_first_fall_below_the_level_is_refined():
    b = Bounds(lo=1, hi=64, start=4, bracket=2.0, tolerance=0.0)
    # 8 fell below, 6 above it again, then 7 below: the crossing is 6..7 (the 16 above is noise past it)
    curve = [(4, 0.9), (8, 0.5), (16, 0.85), (6, 0.9), (7, 0.6)]
    assert next_probe(curve, 0.8, b) is None
    assert crossing(curve, 0.8) == (pytest.approx(6 + 0.1 / 0.3), None)


def test_simulate_matches_the_fake_experiments_probes():
    b = Bounds(1, 64, 4, 2.0, 0.0)
    assert simulate(lambda x: x <= 5, 0.5, b) == PROBES[0]
    assert simulate(lambda x: x <= 10, 0.5, b) == PROBES[1]
    assert simulate(lambda x: True, 0.5, b) == [4, 8, 16, 32, 64]
    assert simulate(lambda x: False, 0.5, b) == [4, 2, 1]


def test_linear_fit_interval_against_a_hand_computation():
    xs, ys = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0]
    fit = linear_fit(xs, ys)
    # mean x 2.5, mean y 2.75; Sxx = 5, Sxy = 5.5 -> slope 1.1, intercept 0; residuals 1.1-1=.1, 2.2-3=-.8, 3.3-2=1.3,
    # 4.4-5=-.6 -> SSres = 0.01 + 0.64 + 1.69 + 0.36 = 2.7; SStot = 3.0625+0.0625+0.5625+5.0625 = 8.75
    assert fit["slope"] == pytest.approx(1.1) and fit["intercept"] == pytest.approx(0.0)
    assert fit["r2"] == pytest.approx(1 - 2.7 / 8.75) and fit["n"] == 4
    half = 4.303 * (2.7 / 2 / 5) ** 0.5  # t(0.975, 2 dof) * standard error of the slope
    assert fit["slope_ci95"] == [pytest.approx(1.1 - half), pytest.approx(1.1 + half)]
    assert linear_fit([1.0, 2.0], [1.0, 2.0])["slope_ci95"] is None  # two points: a line, no interval
    assert linear_fit([3.0], [1.0]) == {"slope": None, "intercept": None, "r2": None, "slope_ci95": None, "n": 1}


@pytest.mark.parametrize("dof, t", [(1, 12.706), (10, 2.228), (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980)])
def test_t_quantiles(dof, t):
    assert threshold.t975(dof) == pytest.approx(t, abs=1.5e-3)


# -- the runner ----------------------------------------------------------------------------
def test_search_runs_exactly_the_probes_it_needs(tmp_path):
    plan = runner.make_plan(SEARCH, None, {})
    assert plan.searching and [p.label for p in plan.points] == ["c=0 x=4", "c=1 x=4"]
    assert len(plan.expected) == len(PROBES[0]) + len(PROBES[1])
    result = run_search(tmp_path).run()
    assert result.status == "finished"
    assert probes(result) == PROBES
    assert result.summary.result == {"thresholds": [5.5, 10.5], "runs": 10}
    rows = Catalog(tmp_path).query("SELECT point, seed FROM runs WHERE status = 'finished'")
    assert len(rows) == 10 and len({seed for _, seed in rows}) == 10


def test_parallel_search_gives_the_same_runs_and_seeds(tmp_path):
    serial = run_search(tmp_path / "a").run()
    parallel = run_search(tmp_path / "b", sweeps.RunOptions(workers=2)).run()
    assert parallel.status == "finished" and probes(parallel) == PROBES
    seeds = lambda result: sorted((r["point"], r["summary"]["seed"]) for r in result.runs)
    assert seeds(parallel) == seeds(serial) and len(parallel.runs) == len(serial.runs) == 10
    assert parallel.summary.result == serial.summary.result


def test_cancelled_search_resumes_where_it_stopped(tmp_path):
    settings = {"sleep": "0.02", "steps": "5"}
    finished = []

    def on_event(e):
        if isinstance(e, sweeps.RunFinished):
            finished.append(e)
            if len(finished) == 3:
                running.cancel()

    running = run_search(tmp_path, settings=settings, on_event=on_event)
    first = running.run()
    assert first.status == "cancelled"
    done = sum(r["status"] == "finished" for r in first.runs)
    assert 3 <= done < 10
    again = run_search(tmp_path, settings=settings, resume=True).run()
    assert again.status == "finished" and again.skipped == done
    rows = Catalog(tmp_path).query(
        "SELECT point FROM runs WHERE status = 'finished' AND sweep_id = ? ORDER BY point", [again.sweep_id])
    assert sorted(r[0] for r in rows) == sorted(f"c={c} x={x}" for c, xs in PROBES.items() for x in xs)
    assert again.summary.result == {"thresholds": [5.5, 10.5], "runs": 10}


def test_a_failed_probe_stops_the_search(tmp_path):
    result = run_search(tmp_path, settings={"fail_x": "8"}).run()
    assert result.status == "failed"
    assert sorted(r["point"] for r in result.runs if r["status"] == "failed") == ["c=0 x=8", "c=1 x=8"]
    assert len(result.runs) == 4  # the x=8 already queued for curve 1 ran; nothing was asked for after the failure


def test_search_on_ray(tmp_path):
    pytest.importorskip("ray")
    result = run_search(tmp_path, sweeps.RunOptions(workers=2, ray="local")).run()
    assert result.status == "finished", result.runs
    assert {c: sorted(xs) for c, xs in probes(result).items()} == {c: sorted(xs) for c, xs in PROBES.items()}


def test_dry_run_states_the_expected_runs(tmp_path):
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", "counting", "--preset", "paper",
                                   "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    search = plan["search"]
    assert search["first_points"] == len(plan["points"]) and search["expected_points"] > search["first_points"]
    assert search["estimated_seconds_per_gpu"] < plan["estimated_seconds"]
