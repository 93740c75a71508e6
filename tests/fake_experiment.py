"""A deterministic experiment for testing the runner (loaded as ``fake_experiment:EXPERIMENT``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from explorer.experiments.base import RunOutput, Summary, TrainedVectors


@dataclass(frozen=True)
class Config:
    points_n: int = 3
    steps: int = 5
    sleep: float = 0.0  # seconds per step
    scale: float = 1.0
    fail_point: int = -1  # this point raises
    vectors: bool = False
    seed: int = 0
    x: int = 0


class Fake:
    name = "fake"
    description = "test double"
    Config = Config
    presets = {"smoke": {"steps": 3}, "paper": {"steps": 10}}

    def points(self, config):
        return [{"x": i} for i in range(config.points_n)]

    def run(self, config, ctx):
        for step in range(1, config.steps + 1):
            ctx.check()
            if config.x == config.fail_point:
                raise RuntimeError("boom")
            ctx.metric(step, "loss", config.scale / step)
            ctx.progress(step, config.steps, loss=config.scale / step)
            time.sleep(config.sleep)
        vectors = [TrainedVectors(f"fake-{config.x}", ["a", "b", "c"], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])] if config.vectors else []
        return RunOutput({"x": config.x, "final": config.scale / config.steps, "seed": ctx.seed}, vectors,
                         {"fake_rows": [{"x": config.x}]})

    def summarize(self, config, finished):
        return Summary({"total": sum(s["final"] for _, s in finished), "n": len(finished)}, "fake summary")


EXPERIMENT = Fake()


class SlowFake(Fake):
    """The fake with a cost model: 100 s a step (by its estimate), so a few steps make a long sweep."""

    from explorer.experiments.checks import Rules, at_least

    rules = Rules({"steps": at_least(1), "points_n": at_least(1, 100)}, estimate=lambda c: 100.0 * c.steps)
    del Rules, at_least


SLOW = SlowFake()
