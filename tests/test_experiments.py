"""The experiment runner: catalog rows while running, resume after a kill, cancel, parallel, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.experiments import base, registry, runner
from explorer.services import sweeps
from explorer.services.engine import Engine
from explorer.store.catalog import Catalog

FAKE = "fake_experiment:EXPERIMENT"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch):
    # spawned workers and subprocesses find tests/fake_experiment.py through PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if str(TESTS) not in sys.path:
        monkeypatch.syspath_prepend(str(TESTS))


def q(root: Path, sql: str, params=()):
    return Catalog(root).query(sql, params)


def sweep(root: Path, plan, options=sweeps.RunOptions(), on_event=None):
    """A sweep started as the CLI starts one (not yet running)."""
    return sweeps.start(Engine(root), plan, options, on_event)


def test_sweep_records_runs_metrics_rows_and_vectors(tmp_path):
    plan = runner.make_plan(FAKE, "smoke", {"vectors": "true", "scale": "2"})
    assert [p.label for p in plan.points] == ["x=0", "x=1", "x=2"]
    seen = []
    result = sweep(tmp_path, plan, on_event=seen.append).run()
    assert result.status == "finished"
    assert result.summary.result == {"total": pytest.approx(3 * 2 / 3), "n": 3}
    rows = q(tmp_path, "SELECT run_id, point, status, seed, config->>'steps' FROM runs ORDER BY run_id")
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [("x=0", "finished", 0, "3"), ("x=1", "finished", 1, "3"), ("x=2", "finished", 2, "3")]
    # every step's metric landed, with its value
    assert q(tmp_path, "SELECT count(*), min(value), max(value) FROM metrics")[0] == (9, pytest.approx(2 / 3), 2.0)
    assert q(tmp_path, "SELECT value FROM run_metrics WHERE run_id = 1 AND name = 'loss'")[0][0] == pytest.approx(2 / 3)
    assert q(tmp_path, "SELECT count(*) FROM experiment_rows WHERE tbl = 'fake_rows'")[0][0] == 3
    summary = json.loads(q(tmp_path, "SELECT summary FROM sweeps")[0][0])
    assert summary["n"] == 3
    # trained vectors are registered like any model's vocabulary
    assert {m[0] for m in q(tmp_path, "SELECT name FROM models")} == {"fake-0", "fake-1", "fake-2"}
    assert [e.kind for e in seen].count("run") == 3


def test_failed_point_does_not_stop_the_others(tmp_path):
    result = sweep(tmp_path, runner.make_plan(FAKE, None, {"fail_point": "1"})).run()
    assert result.status == "failed"
    assert [r["status"] for r in result.runs] == ["finished", "failed", "finished"]
    assert "boom" in q(tmp_path, "SELECT error FROM runs WHERE point = 'x=1'")[0][0]


def test_cancel_keeps_finished_points_and_resume_skips_them(tmp_path):
    plan = runner.make_plan(FAKE, None, {"points_n": "4", "steps": "40", "sleep": "0.02"})
    finished = threading.Event()

    def on_event(e):
        if isinstance(e, sweeps.RunFinished):
            finished.set()
        if finished.is_set() and isinstance(e, sweeps.RunMetric):
            running.cancel()  # during the second point

    running = sweep(tmp_path, plan, on_event=on_event)
    result = running.run()
    assert result.status == "cancelled"
    assert [r["status"] for r in result.runs] == ["finished", "cancelled"]
    resumed = sweep(tmp_path, plan, sweeps.RunOptions(resume=True)).run()
    assert resumed.sweep_id == result.sweep_id
    assert resumed.skipped == 1
    assert [r["point"] for r in resumed.runs] == ["x=1", "x=2", "x=3"]
    assert resumed.status == "finished" and resumed.summary.result["n"] == 4
    # without --resume the same settings start a new sweep
    assert sweep(tmp_path, runner.make_plan(FAKE, None, {"points_n": "1"})).run().sweep_id == result.sweep_id + 1


def test_killed_sweep_keeps_finished_points(tmp_path):
    """A real SIGKILL mid-sweep: the finished point survives, status says interrupted, --resume completes."""
    cmd = [sys.executable, "-m", "explorer", "--root", str(tmp_path), "experiment", "run", FAKE,
           "--set", "steps=200", "--set", "sleep=0.01", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            time.sleep(0.3)
            if (tmp_path / "catalog.duckdb").exists():
                try:
                    if q(tmp_path, "SELECT count(*) FROM runs WHERE status = 'finished'")[0][0] >= 1:
                        break
                except Exception:  # the writer holds the file this instant
                    pass
        else:
            pytest.fail("the sweep finished no point in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    status = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "status", "--json"])
    assert status.exit_code == 0, status.output
    sweep = json.loads(status.stdout)[0]
    assert sweep["status"] == "interrupted" and sweep["finished_runs"] >= 1
    kept = sweep["finished_runs"]
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", FAKE, "--set", "steps=200",
                                   "--set", "sleep=0.01", "--set", "sleep=0", "--resume", "--json"])
    # a changed setting is a different sweep: nothing skipped
    assert json.loads(res.stdout)["skipped"] == 0
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", FAKE, "--set", "steps=200",
                                   "--set", "sleep=0.01", "--resume", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["sweep_id"] == sweep["sweep_id"] and out["skipped"] == kept and out["status"] == "finished"
    statuses = [r[0] for r in q(tmp_path, f"SELECT status FROM runs WHERE sweep_id = {sweep['sweep_id']}")]
    assert statuses.count("finished") == 3 and "running" not in statuses


def test_parallel_workers_match_a_serial_sweep(tmp_path):
    settings = {"points_n": "4", "scale": "3"}
    serial = sweep(tmp_path / "a", runner.make_plan(FAKE, None, settings)).run()
    parallel = sweep(tmp_path / "b", runner.make_plan(FAKE, None, settings), sweeps.RunOptions(workers=2)).run()
    assert parallel.status == "finished"
    key = lambda r: r["point"]  # noqa: E731
    assert [r["summary"] for r in sorted(parallel.runs, key=key)] == [r["summary"] for r in sorted(serial.runs, key=key)]
    assert q(tmp_path / "b", "SELECT count(*) FROM metrics")[0][0] == 4 * 5


def test_ray_local_cluster(tmp_path):
    pytest.importorskip("ray")
    result = sweep(tmp_path, runner.make_plan(FAKE, None, {"points_n": "2"}), sweeps.RunOptions(workers=2, ray="local")).run()
    assert result.status == "finished", result.runs
    assert sorted(r["point"] for r in result.runs) == ["x=0", "x=1"]
    assert q(tmp_path, "SELECT count(*) FROM metrics")[0][0] == 2 * 5


def test_settings_are_typed_and_checked():
    cfg = base.apply(base.apply(registry.get(FAKE).Config(), {"steps": "7", "vectors": "yes"}), {})
    assert cfg.steps == 7 and cfg.vectors is True
    with pytest.raises(Exception, match="expected int"):
        runner.make_plan(FAKE, None, {"steps": "many"})
    with pytest.raises(Exception, match="unknown setting"):
        runner.make_plan(FAKE, None, {"stepz": "1"})
    with pytest.raises(Exception, match="no preset"):
        runner.make_plan(FAKE, "huge")


@pytest.mark.parametrize(
    "args, message",
    [
        (["experiment", "run", "nonesuch"], "unknown experiment"),
        (["experiment", "run", FAKE, "--set", "steps"], "expected key=value"),
        (["experiment", "run", FAKE, "--preset", "huge"], "no preset"),
        (["experiment", "status", "99"], "no sweep 99"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    res = CliRunner().invoke(app, ["--root", str(tmp_path), *args])
    assert res.exit_code != 0
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_list_shows_every_experiment():
    res = CliRunner().invoke(app, ["experiment", "list", "--json"])
    assert res.exit_code == 0, res.output
    items = {it["name"]: it for it in json.loads(res.stdout)}
    assert set(items) == {"counting", "concepts", "word2vec", "cooccurrence", "llm-counting"}
    for it in items.values():
        assert {"smoke", "paper"} <= set(it["presets"]) and it["settings"]


def test_workers_stop_when_the_driver_is_killed(tmp_path):
    """SIGTERM on a sweep with --workers: its worker processes stop at their next check instead
    of training on for nobody."""
    cmd = [sys.executable, "-m", "explorer", "--root", str(tmp_path), "experiment", "run", FAKE, "--workers", "2",
           "--set", "points_n=2", "--set", "steps=2000", "--set", "sleep=0.05", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.5)
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(p) for p in out if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")
                   .replace("\0", " ")] if out else []
    assert len(workers) == 2, "the sweep started no workers"
    time.sleep(3)  # both are inside a point by now
    proc.terminate()
    proc.wait(30)
    gone = time.time() + 30
    while time.time() < gone and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.5)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert alive == []
