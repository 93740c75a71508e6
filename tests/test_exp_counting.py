"""The counting experiment (Yehudai et al. 2024): labels, learning, summary maths, cancel, grid."""

from __future__ import annotations

import pytest

from explorer.experiments import base
from explorer.experiments.base import RunContext, apply
from explorer.experiments.counting import (
    EXPERIMENT,
    Config,
    m_values,
    sample_batch,
    summarize,
)

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("task", ["qc", "mfc"])
def test_sampled_labels(task):
    cfg = Config(task=task, m=7)
    gen = torch.Generator().manual_seed(3)
    tokens, labels = sample_batch(cfg, 200, gen)
    n = 70
    assert tokens.shape == (200, n + (2 if task == "qc" else 1))
    assert (tokens[:, 0] == 7).all() and ((tokens[:, 1:n + 1] >= 0) & (tokens[:, 1:n + 1] < 7)).all()
    for row, label in zip(tokens.tolist(), labels.tolist()):
        seq = row[1:n + 1]
        want = seq.count(row[-1]) if task == "qc" else max(seq.count(t) for t in range(7))
        assert label == want
    if task == "qc":
        assert (tokens[:, -1] < 7).all() and len(set(labels.tolist())) > 5


def test_count_cap_clips_labels():
    cfg = Config(task="mfc", m=5, count_cap=12)
    _, labels = sample_batch(cfg, 300, torch.Generator().manual_seed(0))
    assert labels.max() == 12 and labels.min() >= 1


def test_learns_when_d_much_larger_than_m():
    cfg = apply(Config(), {"task": "qc", "d": 32, "m": 3, "n_factor": 3, "lr": 1e-3, "batch": 32,
                           "steps": 500, "test_samples": 400, "eval_every": 250})
    seen = []
    ctx = RunContext(0, seed=0, emit=seen.append)
    out = EXPERIMENT.run(cfg, ctx)
    assert out.summary["accuracy"] >= 0.9, out.summary
    assert {k: out.summary[k] for k in ("d", "m", "task", "steps")} == {"d": 32, "m": 3, "task": "qc", "steps": 500}
    metrics = [(e.step, e.name) for e in seen if e.kind == "metric"]
    assert metrics == [(250, "loss"), (250, "accuracy"), (500, "loss"), (500, "accuracy")]
    progress = [e for e in seen if e.kind == "progress"]
    assert progress[-1].step == 500 and progress[-1].total == 500 and "loss" in progress[-1].values


def result(d, m, acc):
    return (apply(Config(), {"d": d, "m": m}), {"task": "qc", "d": d, "m": m, "accuracy": acc, "loss": 0.0})


def test_summarize_threshold_and_fit():
    finished = [
        # d=8: 0.9 at m=8, 0.7 at m=12 -> crossing at 8 + (0.9-0.8)*(12-8)/(0.9-0.7) = 10
        result(8, 4, 1.0), result(8, 8, 0.9), result(8, 12, 0.7), result(8, 16, 0.85),
        # d=16: 0.85 at 16, 0.65 at 24 -> 16 + 0.05*8/0.2 = 18
        result(16, 8, 1.0), result(16, 16, 0.85), result(16, 24, 0.65),
        # d=32: 0.8 (counts as not below) at 32, 0.4 at 48 -> 32 + 0 = 32
        result(32, 16, 0.95), result(32, 32, 0.8), result(32, 48, 0.4),
        result(64, 16, 0.99), result(64, 32, 0.95),  # never below: censored above
        result(4, 8, 0.5),  # below already at the smallest m: censored below
    ]
    s = summarize(Config(), finished)
    thr = {t["d"]: t for t in s.result["m_thr"]}
    assert thr[8]["m_thr"] == pytest.approx(10.0)
    assert thr[16]["m_thr"] == pytest.approx(18.0)
    assert thr[32]["m_thr"] == pytest.approx(32.0)
    assert thr[64] == {"d": 64, "m_thr": None, "censored": "above", "probes": 2}
    assert thr[4] == {"d": 4, "m_thr": None, "censored": "below", "probes": 1}
    # least squares through (8, 10), (16, 18), (32, 32): mean d 56/3, mean m_thr 20;
    # Sxy = 272, Sxx = 896/3 -> slope 51/56, intercept 20 - 17 = 3; residuals -2/7, 3/7, -1/7
    # -> SSres = 2/7, SStot = 100 + 4 + 144 = 248
    fit = s.result["fit"]
    assert fit["slope"] == pytest.approx(51 / 56)
    assert fit["intercept"] == pytest.approx(3.0)
    assert fit["r2"] == pytest.approx(1 - (2 / 7) / 248)
    assert {"d": 8, "m": 12, "accuracy": 0.7} in s.result["accuracy"] and len(s.result["accuracy"]) == 13
    assert "m_thr" in s.text and "fit: m_thr = 0.911 * d + 3.00" in s.text
    assert len(s.figure.axes) == 2


def test_summarize_averages_repeats_and_handles_no_fit():
    s = summarize(Config(), [result(8, 4, 1.0), result(8, 4, 0.8), result(8, 8, 0.5)])
    assert {"d": 8, "m": 4, "accuracy": pytest.approx(0.9)} in s.result["accuracy"]
    assert s.result["m_thr"] == [{"d": 8, "m_thr": pytest.approx(4 + 0.1 * 4 / 0.4), "probes": 2}]
    assert s.result["fit"] == {"slope": None, "intercept": None, "r2": None, "slope_ci95": None, "n": 1}


def test_cancel_raises():
    cfg = apply(Config(), {"d": 8, "m": 3, "steps": 10_000})
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(base.Cancelled):
        EXPERIMENT.run(cfg, RunContext(0, seed=0, cancelled=cancelled))
    assert len(calls) == 2  # stopped at the second check, long before 10k steps


def test_points_grid():
    cfg = apply(Config(), {"dims": (4, 8), "ms": (2, 5)})
    assert EXPERIMENT.points(cfg) == [{"d": 4, "m": 2}, {"d": 4, "m": 5}, {"d": 8, "m": 2}, {"d": 8, "m": 5}]
    paper = apply(Config(), EXPERIMENT.presets["paper"])
    # the paper's widths and both tasks, m_thr searched from m = d (one first point per task and d)
    assert EXPERIMENT.searches(paper) and min(paper.dims) == 8 and max(paper.dims) == 128
    assert EXPERIMENT.points(paper) == [{"task": t, "d": d, "m": d} for t in ("qc", "mfc") for d in paper.dims]
    grid = apply(paper, {"m_search": "grid"})
    ms = m_values(grid)
    assert len(ms) == 20 and ms[0] == 5 and ms[-1] == 150 and ms == sorted(ms)
    assert len(EXPERIMENT.points(grid)) == 20 * len(paper.dims) * 2 and not EXPERIMENT.searches(grid)
    smoke = apply(Config(), EXPERIMENT.presets["smoke"])
    assert all(set(p) == {"d", "m"} for p in EXPERIMENT.points(smoke))
    assert EXPERIMENT.name == "counting" and EXPERIMENT.description


def test_bad_config_is_a_user_error():
    from explorer.errors import ExplorerError

    for bad in ({"task": "sum"}, {"d": 10}, {"lr_schedule": "step"}):
        with pytest.raises(ExplorerError):
            EXPERIMENT.run(apply(Config(), {"m": 3, "steps": 5, **bad}), RunContext(0, seed=0))


def test_stop_at_ends_a_clear_pass_early():
    cfg = apply(Config(), {"d": 8, "m": 2, "n_factor": 3, "lr": 5e-3, "lr_schedule": "cosine", "batch": 32,
                           "steps": 3000, "eval_every": 50, "test_samples": 200, "stop_at": 0.95})
    out = EXPERIMENT.run(cfg, RunContext(0, seed=0))
    assert out.summary["accuracy"] >= 0.95 and out.summary["steps"] < 3000


def test_cpu_preset_is_a_search_over_five_widths_and_both_tasks():
    cpu = apply(Config(), EXPERIMENT.presets["cpu"])
    assert EXPERIMENT.searches(cpu) and len(cpu.dims) >= 5 and set(cpu.tasks) == {"qc", "mfc"}
    from explorer.experiments import runner

    plan = runner.make_plan("counting", "cpu")
    assert len(plan.points) == 2 * len(cpu.dims) and len(plan.expected) > len(plan.points)
    assert plan.estimate(workers=2) < 30 * 60  # the cost model agrees it is a laptop run


def test_restarts_train_again_below_the_threshold_and_keep_the_best():
    from explorer.experiments.events import RunMetric

    seen = []
    cfg = apply(Config(), {"d": 4, "m": 30, "n_factor": 2, "steps": 6, "eval_every": 3, "test_samples": 50,
                           "restarts": 3})
    out = EXPERIMENT.run(cfg, RunContext(0, seed=0, emit=seen.append))
    accs = out.summary["accuracies"]
    assert len(accs) == 3 and out.summary["accuracy"] == max(accs) < 0.8  # 6 steps cannot count 30 tokens
    steps = [e.step for e in seen if isinstance(e, RunMetric) and e.name == "accuracy"]
    assert steps == [3, 6, 9, 12, 15, 18]  # each model's metrics after the previous one's
    easy = apply(cfg, {"m": 2, "steps": 400, "eval_every": 50, "lr": 5e-3, "stop_at": 0.95})
    out = EXPERIMENT.run(easy, RunContext(0, seed=0))
    assert out.summary["accuracies"] == [out.summary["accuracy"]] and out.summary["accuracy"] >= 0.8
