"""Before a sweep starts: settings checked (ranges, settings a grid overrides), the number of
points and an estimated time stated, and a long sweep without a preset refused unless --yes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clitools import one_line_error
from explorer.cli.main import app
from explorer.errors import ExplorerError
from explorer.experiments import checks, registry, runner

TESTS = Path(__file__).resolve().parent
SLOW = "fake_experiment:SLOW"


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if str(TESTS) not in sys.path:
        monkeypatch.syspath_prepend(str(TESTS))


def run(root, *args):
    return CliRunner().invoke(app, ["--root", str(root), *args])


def nothing_recorded(root: Path) -> bool:
    """No sweep row was written (the catalog may not even exist)."""
    if not (root / "catalog.duckdb").exists():
        return True
    from explorer.store.catalog import Catalog

    return Catalog(root).query("SELECT count(*) FROM sweeps")[0][0] == 0


@pytest.mark.parametrize("sets, names", [
    (["d=-1", "steps=1"], "d=-1"),  # the command: a negative size
    (["d=16"], "d=16"),  # the dims grid sets d: a scalar d would be silently ignored
    (["m=5"], "m=5"),
    (["ms=4,8", "m_min=2"], "m_min=2"),
    (["dims=8,-3"], "dims=8,-3"),
    (["heads=3"], "heads=3"),  # 8 is not divisible by 3
    (["lr=nan"], "lr=nan"),
    (["threshold=1.5"], "threshold=1.5"),
    (["task=count"], "task=count"),
    (["steps=0"], "steps=0"),
])
def test_counting_settings_are_checked_before_anything_starts(tmp_path, sets, names):
    args = [a for s in sets for a in ("--set", s)]
    line = one_line_error(run(tmp_path, "experiment", "run", "counting", *args))
    assert f"setting {names}" in line
    assert nothing_recorded(tmp_path)


def test_a_grid_overriding_a_scalar_is_named(tmp_path):
    line = one_line_error(run(tmp_path, "experiment", "run", "counting", "--set", "d=16", "--dry-run"))
    assert "no effect" in line and "dims" in line
    # with the grid emptied, d is what runs
    plan = runner.make_plan("counting", None, {"dims": "", "d": "12", "ms": "4"})
    assert [p.label for p in plan.points] == ["d=12 m=4"]


@pytest.mark.parametrize("name, sets, names", [
    ("concepts", {"d": "5"}, "setting d=5"),
    ("concepts", {"p_low": "0.9"}, "setting p_low=0.9"),
    ("concepts", {"m": "11"}, "setting m=11"),
    ("concepts", {"incomplete_grid": "false", "max_revealed": "2"}, "setting max_revealed=2"),
    ("word2vec", {"arch": "sg,glove"}, "setting arch=sg,glove"),
    ("word2vec", {"window": "0"}, "setting window=0"),
    ("word2vec", {"arch": "cbow", "shared_negatives": "true"}, "setting shared_negatives=true"),
    ("word2vec", {"name": "no spaces please"}, "setting name="),
    ("cooccurrence", {"dim": "-2"}, "setting dim=-2"),
    ("cooccurrence", {"cds": "0.75"}, "setting cds=0.75"),  # ppmi is off
    ("cooccurrence", {"svd": "fast"}, "setting svd=fast"),
])
def test_other_experiments_settings(name, sets, names):
    with pytest.raises(ExplorerError, match="^" + re.escape(names)):
        runner.make_plan(name, None, sets)


def test_tuple_settings_are_typed_even_when_their_default_is_empty():
    plan = runner.make_plan("counting", "smoke", {"ms": "3,5"})
    assert plan.config.ms == (3, 5) and [p.config.m for p in plan.points][:2] == [3, 5]


def test_missing_corpus_is_reported_before_the_sweep_is_recorded(tmp_path):
    for corpus in (tmp_path / "nope.txt", tmp_path):
        line = one_line_error(run(tmp_path, "experiment", "run", "word2vec", "--set", f"corpus={corpus}"))
        assert "setting corpus=" in line and ("not found" in line or "not a file" in line)
    line = one_line_error(run(tmp_path, "experiment", "run", "word2vec", "--preset", "smoke",
                              "--set", f"pairs={tmp_path / 'pairs.tsv'}"))
    assert "setting pairs=" in line
    line = one_line_error(run(tmp_path, "experiment", "run", "cooccurrence", "--set", f"corpus={tmp_path / 'c.txt'}"))
    assert "setting corpus=" in line
    assert nothing_recorded(tmp_path)


def test_unreadable_corpus(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    corpus = tmp_path / "secret.txt"
    corpus.write_text("some words here\n")
    corpus.chmod(0)
    with pytest.raises(ExplorerError, match="cannot read"):
        runner.make_plan("word2vec", None, {"corpus": str(corpus)})


def test_every_preset_passes_its_checks_and_rules_name_real_settings():
    for name in registry.names():
        exp = registry.get(name)
        fields = {f.name for f in dataclasses.fields(exp.Config)}
        assert set(exp.rules.checks) <= fields
        assert set(exp.rules.unused(exp.Config())) <= fields
        for preset in [None, *exp.presets]:
            plan = runner.make_plan(name, preset)
            assert plan.estimate() > 0


def test_estimates_tell_minutes_from_days():
    # the cost model is rough, but must put a smoke run under the --yes limit and the paper grid far above it
    assert runner.make_plan("counting", "smoke").estimate() < checks.LONG_SWEEP_S
    assert runner.make_plan("counting", "paper").estimate() > 86400
    assert runner.make_plan("counting", None, {"steps": "1000"}).estimate() < runner.make_plan("counting", None).estimate()
    assert checks.duration(30) == "about 30 s" and checks.duration(600) == "about 10 min"
    assert checks.duration(5 * 3600) == "about 5.0 h" and checks.duration(30 * 86400) == "about 30 days"


def test_long_sweep_without_preset_needs_yes(tmp_path):
    line = one_line_error(run(tmp_path, "experiment", "run", SLOW, "--set", "steps=4"))
    assert "--yes" in line and "3 points" in line and "estimated" in line
    assert nothing_recorded(tmp_path)
    # the same with the counting command
    line = one_line_error(run(tmp_path, "experiment", "run", "counting", "--set", "steps=1"))
    assert "--yes" in line and "a search from 6 points" in line and "runs expected" in line
    res = run(tmp_path, "experiment", "run", SLOW, "--set", "steps=4", "--yes", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "finished"
    assert "3 points, estimated about 20 min" in res.stderr  # stated before it starts
    # an explicit preset is asking for it
    res = run(tmp_path, "experiment", "run", SLOW, "--preset", "paper", "--json")
    assert res.exit_code == 0, res.output


def test_a_preset_estimated_at_days_still_needs_yes(tmp_path):
    line = one_line_error(run(tmp_path, "experiment", "run", "counting", "--preset", "paper"))
    assert "--yes" in line and "estimated" in line
    assert nothing_recorded(tmp_path)
    assert not runner.make_plan("counting", "cpu").needs_confirmation(2)  # the laptop preset starts at once


def test_dry_run_shows_the_effective_settings(tmp_path):
    res = run(tmp_path, "experiment", "run", "counting", "--preset", "smoke", "--set", "steps=7", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "(defaults)" not in res.stdout
    for token in ("preset smoke", "--set steps=7", "steps=7", "dims=4,8", "a search from 2 points", "estimated"):
        assert token in res.stdout.replace("\n", " ")
    out = json.loads(run(tmp_path, "experiment", "run", "counting", "--set", "steps=7", "--dry-run", "--json").stdout)
    assert out["settings"] == {"steps": 7} and out["config"]["steps"] == 7 and len(out["points"]) == 6
    assert out["search"]["expected_points"] > 6  # the first probe per d, then the search
    assert out["estimated_seconds"] > checks.LONG_SWEEP_S  # dry runs need no --yes
    assert nothing_recorded(tmp_path)


def test_events_stream_states_the_plan(tmp_path):
    res = run(tmp_path, "experiment", "run", SLOW, "--set", "steps=1", "--jsonl")
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[0]["kind"] == "plan" and events[0]["points"] == 3 and events[0]["estimated_seconds"] == 300
    assert events[-1]["kind"] == "done"


@pytest.mark.parametrize("args, needle", [
    (["experiment", "status", "--limit", "-1"], "--limit"),
    (["experiment", "run", "word2vec", "--workers", "0"], "--workers"),
])
def test_option_ranges(tmp_path, args, needle):
    assert needle in one_line_error(run(tmp_path, *args))
    assert nothing_recorded(tmp_path)


def test_experiment_list_keeps_bracketed_text(monkeypatch):
    from explorer.experiments import counting

    monkeypatch.setattr(counting.EXPERIMENT, "description", "counts [multimodal] tokens", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(app, ["experiment", "list"])
    assert res.exit_code == 0, res.output
    assert "[multimodal]" in res.stdout


def test_ray_help_names_the_extra():
    res = CliRunner().invoke(app, ["experiment", "run", "--help"], env={"COLUMNS": "200"})
    assert "explorer[ray]" in res.stdout


SETTING_VALUES = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                           st.sampled_from(["", "nan", "inf", "-inf", "1e400", "x", "[", "[1, 2", "1,,2", "true",
                                            "[multimodal]", "0", "-0", "a b"]))


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["counting", "concepts", "word2vec", "cooccurrence", "llm-counting"]),
       data=st.data(), value=SETTING_VALUES)
def test_any_setting_value_is_a_plan_or_one_error(name, data, value):
    exp = registry.get(name)
    key = data.draw(st.sampled_from([f.name for f in dataclasses.fields(exp.Config)]))
    try:
        plan = runner.make_plan(name, "smoke", {key: value})
    except ExplorerError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    for name_, check in exp.rules.checks.items():  # a plan that passed holds values in range
        assert check(getattr(plan.config, name_)) is None


async def test_tui_asks_before_a_long_sweep_and_passes_yes(tmp_path):
    pytest.importorskip("textual")
    from textual.widgets import Button, Input, Select, Static

    from explorer.tui.app import make_app

    app = make_app(tmp_path, "numpy", experiments=[SLOW])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await pilot.pause(0.3)
        app.query_one("#exp-preset", Select).value = ""  # defaults: no preset
        await pilot.pause(0.3)
        app.query_one("#field-steps", Input).value = "4"
        status = lambda: str(app.query_one("#exp-status", Static).render())  # noqa: E731
        app.query_one("#field-points_n", Input).value = "0"
        await pilot.click("#exp-run")
        await pilot.pause(0.2)
        assert "setting points_n=0" in status() and not app.query_one("#exp-run", Button).disabled
        app.query_one("#field-points_n", Input).value = "2"
        await pilot.click("#exp-run")
        await pilot.pause(0.2)
        assert "press Run again" in status() and "2 points" in status()
        assert not app.query_one("#exp-run", Button).disabled and nothing_recorded(tmp_path)
        await pilot.click("#exp-run")  # the second press starts it, with --yes
        for _ in range(300):
            await pilot.pause(0.1)
            if "finished" in status():
                break
        assert "sweep 1 finished" in status()
