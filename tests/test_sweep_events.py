"""The public event stream of sweeps (in process, as --jsonl lines, from a child process) and
the executor interface: the Ray backend and the local executors drive a sweep only through it."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.experiments import events, runner
from explorer.experiments.point import Outcome, execute
from explorer.services import sweeps
from explorer.services.engine import Engine
from explorer.store.catalog import Catalog

FAKE = "fake_experiment:EXPERIMENT"
TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "explorer" / "experiments"


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if str(TESTS) not in sys.path:
        monkeypatch.syspath_prepend(str(TESTS))


def kinds_in_order(kinds: list[str], points: int) -> bool:
    """plan, sweep, then per point start ... run (metric/progress/log between), done last."""
    if kinds[:2] != ["plan", "sweep"] or kinds[-1] != "done":
        return False
    body = kinds[2:-1]
    return (body.count("start") == body.count("run") == points
            and set(body) <= {"start", "metric", "progress", "log", "run"}
            and all(body.index("start") < i for i, k in enumerate(body) if k in ("metric", "progress")))


def test_every_event_round_trips_through_dicts_and_json_lines():
    samples = [
        events.PlanStated(3, 300.0, "fake: 3 points"), events.SweepOpened(4, 3, 1, 2), events.RunStarted(7, "x=1"),
        events.RunMetric(7, 2, "loss", 0.5), events.RunProgress(7, 2, 5, {"loss": 0.5}), events.RunLog(7, "[b]ok[/b]"),
        events.RunFinished(7, "x=1", "failed", None, "boom", "Traceback ..."),
        events.SweepDone(4, "fake", "finished", 1, [{"run_id": 7, "point": "x=1", "status": "finished",
                                                     "summary": {"x": 1}, "error": None}], {"n": 2}, "two lines\nof text"),
    ]
    assert {e.kind for e in samples} == set(events.KINDS)
    for e in samples:
        d = e.to_dict()
        assert next(iter(d)) == "kind" and events.from_dict(d) == e
        line = events.to_json_line(e)
        assert "\n" not in line and "traceback" not in json.loads(line)
        back = events.from_json_line(line)
        assert back == (e if not isinstance(e, events.RunFinished) else events.RunFinished(7, "x=1", "failed", None, "boom"))
    for junk in ("", "not json", "[1, 2]", '{"kind": "nonesuch"}', '{"kind": "start"}'):
        assert events.from_json_line(junk) is None


def test_in_process_sweep_streams_the_documented_events(tmp_path):
    seen = []
    plan = runner.make_plan(FAKE, "smoke")
    result = sweeps.run(Engine(tmp_path), plan, on_event=seen.append)
    assert kinds_in_order([e.kind for e in seen], 3)
    assert seen[0] == events.PlanStated(3, None, plan.describe())
    assert seen[1] == events.SweepOpened(result.sweep_id, 3, 0, 3)
    assert seen[-1] == result.done() and seen[-1].text == "fake summary" and seen[-1].summary == {"total": 1.0, "n": 3}
    metrics = [e for e in seen if isinstance(e, events.RunMetric)]
    stored = Catalog(tmp_path).query("SELECT run_id, step, name, value FROM metrics ORDER BY run_id, step")
    assert [(m.run_id, m.step, m.name, m.value) for m in metrics] == [tuple(r) for r in stored]


def test_jsonl_prints_the_same_events_and_the_result_last(tmp_path):
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", FAKE, "--preset", "smoke", "--jsonl"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    parsed = [events.from_json_line(line) for line in lines]
    assert None not in parsed and kinds_in_order([e.kind for e in parsed], 3)
    again = CliRunner().invoke(app, ["--root", str(tmp_path / "b"), "experiment", "run", FAKE, "--preset", "smoke", "--json"])
    done, result = json.loads(lines[-1]), json.loads(again.stdout)
    assert done.pop("kind") == "done" and done == result  # the last line is what --json prints
    assert res.stderr == ""  # no progress bars, no plan line: stdout is the stream


def test_jsonl_failures_keep_the_exit_code_and_the_one_error_line(tmp_path):
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", FAKE, "--set", "fail_point=1", "--jsonl"])
    assert res.exit_code == 1 and res.stderr.startswith("error: 1 point(s) failed")
    finished = [e for e in map(events.from_json_line, res.stdout.splitlines()) if isinstance(e, events.RunFinished)]
    assert [e.status for e in finished] == ["finished", "failed", "finished"] and "boom" in finished[1].error
    both = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", FAKE, "--json", "--jsonl"])
    assert both.exit_code != 0 and both.stderr.startswith("error: --json and --jsonl")


def test_the_hidden_events_flag_is_gone(tmp_path):
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", FAKE, "--events"])
    assert res.exit_code == 2 and "--events" in res.output
    helptext = CliRunner().invoke(app, ["experiment", "run", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--jsonl" in helptext


def test_spawned_sweep_reports_events_and_its_exit(tmp_path):
    request = sweeps.SweepRequest(FAKE, "smoke", ("points_n=2",))
    assert sweeps.command(tmp_path, request)[-4:] == ["--preset", "smoke", "--set", "points_n=2"]
    proc = sweeps.spawn(tmp_path, request)
    got = list(proc.events())
    assert proc.wait() == (0, "")
    assert kinds_in_order([e.kind for e in got], 2) and got[-1].status == "finished"
    failed = sweeps.spawn(tmp_path, sweeps.SweepRequest(FAKE, None, ("steps=x",)))
    assert list(failed.events()) == []
    code, line = failed.wait()
    assert code == 1 and line.startswith("error: --set steps=x")


class Reversed:
    """An executor of our own: the points last to first, through the Driver interface only."""

    workers = 1

    def __init__(self):
        self.order = []

    def run(self, points, driver, root):
        for point in reversed(points):
            task = driver.begin(point)
            self.order.append(task.label)
            driver.report(events.RunMetric(task.run_id, 1, "loss", 1.0))
            driver.end(task, execute(task, driver.report, lambda: driver.cancelled) if task.label != "x=0"
                       else Outcome("failed", error="skipped on purpose"))


def test_a_sweep_runs_on_any_executor(tmp_path):
    executor = Reversed()
    result = runner.Sweep(Catalog(tmp_path), runner.make_plan(FAKE, "smoke"), executor).run()
    assert executor.order == ["x=2", "x=1", "x=0"]
    assert [(r["point"], r["status"]) for r in result.runs] == [("x=2", "finished"), ("x=1", "finished"), ("x=0", "failed")]
    assert result.status == "failed"
    rows = Catalog(tmp_path).query("SELECT point, status, error FROM runs ORDER BY run_id")
    assert rows == [("x=2", "finished", None), ("x=1", "finished", None), ("x=0", "failed", "skipped on purpose")]
    assert Catalog(tmp_path).query("SELECT count(*) FROM metrics")[0][0] == 3 + 2 * 3


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_backends_do_not_import_the_sweep():
    """The dependency goes one way: runner -> executors -> point; the Ray backend -> executors, point."""
    for module in ("ray_backend", "executors", "point", "events"):
        found = _imports(PACKAGE / f"{module}.py")
        assert "explorer.experiments.runner" not in found, module
    assert "explorer.experiments.ray_backend" not in _imports(PACKAGE / "runner.py")
