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


@dataclass(frozen=True)
class SearchConfig:
    chains: int = 2  # curves; curve c is 1.0 up to x = 5 * (c + 1), then 0.0
    hi: int = 64
    steps: int = 2
    sleep: float = 0.0
    fail_x: int = -1  # a run at this x raises
    seed: int = 0
    c: int = 0
    x: int = 0


class SearchFake:
    """A search: for each curve, bisect the x where "acc" falls below 0.5 (as counting does for m_thr)."""

    name = "search-fake"
    description = "test double of a search"
    Config = SearchConfig
    presets = {"smoke": {}}

    @staticmethod
    def bounds(config):
        from explorer.experiments.threshold import Bounds

        return Bounds(1, config.hi, 4, 2.0, 0.0)

    def points(self, config):
        return [{"c": c, "x": 4} for c in range(config.chains)]

    def next_points(self, config, finished, pending):
        from explorer.experiments.threshold import next_probe

        busy = {p.c for p in pending}
        out = []
        for c in range(config.chains):
            curve = [(cfg.x, s["acc"]) for cfg, s in finished if cfg.c == c]
            x = None if c in busy else next_probe(curve, 0.5, self.bounds(config))
            if x is not None:
                out.append({"c": c, "x": x})
        return out

    def expected_points(self, config):
        from explorer.experiments.threshold import simulate

        return [{"c": c, "x": x} for c in range(config.chains)
                for x in simulate(lambda x, c=c: x <= 5 * (c + 1), 0.5, self.bounds(config))]

    def run(self, config, ctx):
        for step in range(1, config.steps + 1):
            ctx.check()
            if config.x == config.fail_x:
                raise RuntimeError("boom")
            ctx.metric(step, "acc", 1.0)
            time.sleep(config.sleep)
        return RunOutput({"c": config.c, "x": config.x, "acc": 1.0 if config.x <= 5 * (config.c + 1) else 0.0,
                          "seed": ctx.seed})

    def summarize(self, config, finished):
        from explorer.experiments.threshold import crossing

        return Summary({"thresholds": [crossing([(cfg.x, s["acc"]) for cfg, s in finished if cfg.c == c], 0.5)[0]
                                       for c in range(config.chains)], "runs": len(finished)})


SEARCH = SearchFake()
