"""Counting with small transformers: Yehudai et al. 2024, "When Can Transformers Count to n?".

Two tasks on sequences of ``n = n_factor * m`` tokens drawn i.i.d. uniformly from a
vocabulary of ``m`` tokens (``n_factor = 10`` as in our issue):

* **QC** (query count): how often does a query token ``q`` occur among the ``n`` tokens;
* **MFC** (most-frequent count): the count of the most frequent token.

The paper's claim: a transformer of width ``d`` counts well while ``m <= d`` (a token's
one-hot-like embedding lets attention build a histogram), and accuracy drops once ``m``
grows past a threshold ``m_thr(d)`` that is roughly linear in ``d``. ``summarize`` measures
``m_thr`` per ``d`` and fits ``m_thr ~ a*d + b``.

Choices the paper leaves open (ours):

* **No positional encoding.** Both answers are functions of the multiset of tokens, so
  they are invariant to permuting the sequence; without positions the model is exactly
  permutation-equivariant, which is the right inductive bias and matches the paper's
  histogram construction (positions would only add noise to the dot products).
* **No mask.** The readout is bidirectional (every position attends to every position).
* **Input layout and readout.** Token ids ``0..m-1`` are the vocabulary, id ``m`` is a
  special BOS/CLS token (so the embedding table has ``m + 1`` rows). QC: ``[BOS, x_1..x_n,
  q]``, read out at the query (last) position; ``q`` is uniform over the vocabulary, so the
  count can be 0, and the query itself is not counted. The query shares its token's
  embedding (no "query" marker); the BOS gives attention a fixed reference to measure
  the share of matching tokens against. MFC: ``[CLS, x_1..x_n]``, read out at the CLS (first) position.
* **Model.** ``layers`` pre-LayerNorm ``nn.TransformerEncoderLayer`` blocks (``heads``
  heads, MLP width ``mlp_ratio * d`` = 4d, ReLU, no dropout), a final LayerNorm and a
  linear head. ``d`` must be divisible by ``heads``.
* **Classes.** The count is a class in ``0..cap`` with ``cap = n`` by default (exact: no
  count exceeds n); ``count_cap > 0`` clips labels to ``min(count_cap, n)``, the last class
  then meaning ">= cap".
* **Data.** Training batches are sampled fresh every step (a ``torch.Generator`` seeded
  with ``ctx.seed``); the test set (``test_samples`` sequences) is sampled once per run
  with the fixed seed ``TEST_SEED_OFFSET + config.seed``, so every run of a sweep with the
  same ``m`` sees the same test set. Accuracy is exact-match on the count.
* **Sweep.** ``tasks`` and ``dims`` give the curves, one per (task, d). By default
  (``m_search = "auto"`` without ``ms``) m_thr is *searched* for each: the first run is at
  m = d (``m_start``), then m steps up (or down) by ``bracket`` = 1.5 until accuracy
  crosses ``threshold`` = 0.8, then the crossing is bisected until it is bracketed within
  ``max(1, tolerance * m)`` (``tolerance`` = 0.1), all within ``m_min..m_max``
  (:mod:`explorer.experiments.threshold`). Every probe is a run of the sweep; with
  ``--workers``/``--ray`` the curves are searched side by side. ``ms`` (or ``m_search =
  "grid"``: ``m_count`` values from m_min to m_max) runs a fixed grid instead. ``m_thr(d)``
  is where accuracy first falls below the threshold, linearly interpolated from the probe
  before; it is censored (None) "above" when accuracy never falls below it and "below"
  when already the smallest m does.
* **Metrics.** Every ``eval_every`` steps (and at the last): ``loss`` (mean training loss
  since the last report) and ``accuracy`` (test set); the run's summary holds the last ones
  and the steps taken. ``stop_at`` > 0 ends a run early once its accuracy reaches it: a
  clear pass (above the 0.8 threshold) costs no more steps.
* **Restarts.** At the same (d, m), one seed may find the counting solution and another
  not (QC, d = 4, m = 6, 5000 steps: 0.50 and 0.92). ``restarts`` > 1 trains a point that
  ends below the threshold again from another seed (the run's seed + 7919 k), up to
  ``restarts`` models, and its accuracy is the best of them (``accuracies`` lists each). A
  pass stops the restarts. No preset uses it: it doubles the cost of every failing probe.
* **Optimiser.** Adam at a constant ``lr`` (paper); ``lr_schedule = "cosine"`` decays it to
  0 over the run (used by "smoke" and "cpu").

The "smoke" preset deviates from the paper to finish in minutes on 2 CPU cores: QC, d in
(4, 8), m searched in 2..32, n_factor 3 (n = 3m: attention costs ~n^2 and counts up to
~20 are slow to learn exactly), Adam lr 5e-3 with cosine decay (a constant 1e-3 or 2e-3
leaves d=8 undertrained in 1500 steps; a constant 3e-3 spikes), batch 32, 1500 steps, 400
test samples. It shows the drop past m = d; it does not reproduce the paper's numbers
(the short training also lowers accuracy, and d = 4 has 1-wide heads). Measured: 7 runs
(d=4: m 4, 2, 3; d=8: m 8, 5, 6, 7) in 112 s one after another on a shared 2-core machine
at load ~5; m_thr 3.3 and 7.7. (The earlier fixed grid, m = 2..16, took 12 runs; with 2
torch threads per run the sweep was ten times slower, the threads spinning.) Short training
leaves d=4 at m=4 sensitive to floating-point order (0.49 here; 0.96 once with 2 threads).

The "cpu" preset (QC and MFC, d = 4 ... 12 with 2 heads, n = 5m, 6000 steps at 5e-3 with
cosine decay, ``stop_at`` 0.98) finishes in about 10 minutes on 2 cores with ``--workers 2``.
Each width counts m = d or nearly so and fails by 1.5 d, but its m_thr(d) is not the paper's
line: QC flattens near m = 10 from d = 8 on, because at this budget learning slows with the
sequence length faster than width helps (twice the steps raise d = 4's m_thr past 9). The
README gives the numbers; the paper's law needs the paper's budget ("paper").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from explorer.errors import ExplorerError
from explorer.experiments import counting_report, rules
from explorer.experiments.base import RunContext, RunOutput, Summary
from explorer.experiments.threshold import Bounds, next_probe, simulate

TEST_SEED_OFFSET = 1_000_003
RESTART_SEED = 7_919  # a restart's seed: the run's seed + RESTART_SEED * attempt
CHECK_EVERY = 25  # ctx.check() at least every this many steps (and every 0.5 s)
PROGRESS_EVERY = 50  # steps between ctx.progress() calls


@dataclass(frozen=True)
class Config:
    task: str = "qc"  # "qc" (query count) | "mfc" (most-frequent count)
    d: int = 32  # model width (one run)
    m: int = 16  # vocabulary size (one run)
    tasks: tuple[str, ...] = ()  # sweep over tasks; () = task alone
    dims: tuple[int, ...] = (8, 16, 32, 64, 96, 128)  # sweep over d; () = d alone
    m_search: str = "auto"  # "bisect" (search m_thr per d) | "grid" (ms or m_count values) | "auto": grid iff ms given
    ms: tuple[int, ...] = ()  # grid: these m
    m_min: int = 5  # the range of m (grid: m_count values across it; bisect: the search's bounds)
    m_max: int = 150
    m_count: int = 20
    m_start: int = 0  # bisect: the first m probed (0: m = d)
    bracket: float = 1.5  # bisect: step factor while bracketing the crossing
    tolerance: float = 0.1  # bisect: stop once the crossing is bracketed within max(1, tolerance * m)
    n_factor: int = 10  # sequence length n = n_factor * m
    count_cap: int = 0  # 0: classes 0..n; else labels clipped to min(count_cap, n)
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "constant" (paper) | "cosine" (decay to 0 over the steps)
    batch: int = 16
    steps: int = 100_000
    test_samples: int = 1600
    eval_every: int = 1000
    threshold: float = 0.8  # accuracy defining m_thr
    stop_at: float = 0.0  # stop a run early once its test accuracy reaches this (0: never; it is a pass by then)
    restarts: int = 1  # train again from another seed while below the threshold, up to this many models
    seed: int = 0
    threads: int = 1  # torch threads (0: the runner's); 2 threads ran the smoke steps 6x slower on a busy 2-core box


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"tasks": ("qc", "mfc")},
    "smoke": {"dims": (4, 8), "m_min": 2, "m_max": 32, "n_factor": 3, "lr": 5e-3,
              "lr_schedule": "cosine", "batch": 32, "steps": 1500, "test_samples": 400, "eval_every": 500},
    "cpu": {"tasks": ("qc", "mfc"), "dims": (4, 6, 8, 10, 12), "heads": 2, "m_min": 2, "m_max": 64,
            "tolerance": 0.25, "n_factor": 5, "lr": 5e-3, "lr_schedule": "cosine", "batch": 32, "steps": 6000,
            "test_samples": 400, "eval_every": 500, "stop_at": 0.98, "restarts": 1},
}


# -- data and model ---------------------------------------------------------------------
def seq_len(config: Config) -> int:
    """Number of tokens n in a sequence (without BOS/CLS or query)."""
    return config.n_factor * config.m


def num_classes(config: Config) -> int:
    """Count classes 0..cap."""
    n = seq_len(config)
    return (min(config.count_cap, n) if config.count_cap > 0 else n) + 1


def sample_batch(config: Config, batch: int, generator: Any, device: str = "cpu") -> tuple[Any, Any]:
    """``(tokens [batch, L] long, labels [batch] long)`` for ``config.task`` (layout: module doc)."""
    import torch

    m, n = config.m, seq_len(config)
    x = torch.randint(0, m, (batch, n), generator=generator, device=device)
    bos = torch.full((batch, 1), m, dtype=torch.long, device=device)
    if config.task == "qc":
        q = torch.randint(0, m, (batch, 1), generator=generator, device=device)
        labels = (x == q).sum(1)
        tokens = torch.cat([bos, x, q], 1)
    elif config.task == "mfc":
        counts = torch.zeros(batch, m, dtype=torch.long, device=device).scatter_add_(1, x, torch.ones_like(x))
        labels = counts.max(1).values
        tokens = torch.cat([bos, x], 1)
    else:
        raise ExplorerError(f"unknown task {config.task!r}; tasks: qc, mfc")
    return tokens, labels.clamp_(max=num_classes(config) - 1)


def build_counter(config: Config) -> Any:
    """The counting transformer (an ``nn.Module``: tokens -> logits at the readout position)."""
    from torch import nn

    class CountingTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = config.d
            self.readout = -1 if config.task == "qc" else 0
            self.embed = nn.Embedding(config.m + 1, d)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(d, config.heads, config.mlp_ratio * d, dropout=0.0,
                                           batch_first=True, norm_first=True)
                for _ in range(config.layers))
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, num_classes(config))

        def forward(self, tokens: Any) -> Any:
            h = self.embed(tokens)
            for block in self.blocks:
                h = block(h)
            return self.head(self.norm(h[:, self.readout]))

    if config.d % config.heads:
        raise ExplorerError(f"d={config.d} is not divisible by heads={config.heads}")
    if config.task not in ("qc", "mfc"):
        raise ExplorerError(f"unknown task {config.task!r}; tasks: qc, mfc")
    return CountingTransformer()


def make_test_set(config: Config, device: str) -> tuple[Any, Any]:
    """The fixed test set of ``config.test_samples`` sequences (seeded by ``config.seed``)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(TEST_SEED_OFFSET + config.seed)
    return sample_batch(config, config.test_samples, gen, device)


def evaluate(model: Any, tokens: Any, labels: Any, check: Any = None) -> float:
    """Exact-match accuracy of ``model`` on ``(tokens, labels)``, in chunks of ~64k tokens;
    ``check()`` (if given) is called before each chunk."""
    import torch

    chunk = max(16, 65536 // tokens.shape[1])
    was_training, correct = model.training, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(tokens), chunk):
            if check is not None:
                check()
            correct += int((model(tokens[i:i + chunk]).argmax(1) == labels[i:i + chunk]).sum())
    model.train(was_training)
    return correct / max(1, len(tokens))


def lr_at(config: Config, step: int) -> float:
    """Learning rate for ``step`` (1-based) under ``config.lr_schedule``."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / config.steps))
    return config.lr


class Checker:
    """Calls ``ctx.check()`` at most every ``interval`` seconds (and at least every
    ``CHECK_EVERY`` calls), so cancels land within about a second, however slow a step."""

    def __init__(self, ctx: RunContext, interval: float = 0.5):
        self.ctx, self.interval, self.calls, self.next = ctx, interval, 0, time.monotonic() + interval

    def __call__(self) -> None:
        self.calls += 1
        now = time.monotonic()
        if now >= self.next or self.calls % CHECK_EVERY == 0:
            self.next = now + self.interval
            self.ctx.check()


# -- one run ----------------------------------------------------------------------------
def run(config: Config, ctx: RunContext) -> RunOutput:
    """Train one (task, d, m) model with Adam + cross-entropy; report loss and test accuracy.
    With ``restarts`` > 1, a model that ends below the threshold is trained again from
    another seed, up to ``restarts`` times, and the best accuracy counts (see module doc)."""
    import torch

    if config.lr_schedule not in ("constant", "cosine") or config.eval_every < 1:
        raise ExplorerError(f"lr_schedule must be constant|cosine and eval_every >= 1 "
                           f"(got {config.lr_schedule!r}, {config.eval_every})")
    torch.set_num_threads(config.threads or ctx.threads or 1)  # small models: more threads mostly spin
    tries = []
    for attempt in range(max(1, config.restarts)):
        tries.append(train_once(config, ctx, ctx.seed + RESTART_SEED * attempt, attempt * config.steps))
        if tries[-1][0] >= config.threshold:
            break
    acc, loss, steps = max(tries, key=lambda t: t[0])
    summary = {"task": config.task, "d": config.d, "m": config.m, "n": seq_len(config),
               "accuracy": acc, "loss": loss, "steps": steps}
    if config.restarts > 1:
        summary["accuracies"] = [t[0] for t in tries]
    return RunOutput(summary=summary)


def train_once(config: Config, ctx: RunContext, seed: int, offset: int) -> tuple[float, float, int]:
    """One model from ``seed``: ``(test accuracy, loss, steps taken)``; metrics at step ``offset + step``."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    device, check = ctx.device, Checker(ctx)
    model = build_counter(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    test_tokens, test_labels = make_test_set(config, device)
    loss_sum, since, loss, acc = torch.zeros((), device=device), 0, float("nan"), float("nan")
    for step in range(1, config.steps + 1):
        check()
        tokens, labels = sample_batch(config, config.batch, gen, device)
        batch_loss = F.cross_entropy(model(tokens), labels)
        opt.zero_grad(set_to_none=True)
        batch_loss.backward()
        if config.lr_schedule != "constant":
            set_lr(opt, lr_at(config, step))
        opt.step()
        loss_sum += batch_loss.detach()
        since += 1
        last = step == config.steps
        if step % PROGRESS_EVERY == 0 or last:
            ctx.progress(step, config.steps, loss=float(batch_loss.detach()))
        if step % config.eval_every == 0 or last:
            loss, loss_sum, since = float(loss_sum) / since, torch.zeros((), device=device), 0
            acc = evaluate(model, test_tokens, test_labels, check)
            ctx.metric(offset + step, "loss", loss)
            ctx.metric(offset + step, "accuracy", acc)
            if 0 < config.stop_at <= acc:
                ctx.progress(config.steps, config.steps, loss=loss)
                break
    return acc, loss, step


def set_lr(opt: Any, lr: float) -> None:
    """Set the learning rate of every parameter group of ``opt``."""
    for group in opt.param_groups:
        group["lr"] = lr


# -- the sweep --------------------------------------------------------------------------
def searching(config: Config) -> bool:
    """Does this sweep bisect m (rather than run a grid)?"""
    return rules.counting_searches(config)


def m_values(config: Config) -> list[int]:
    """The grid's m values: ``config.ms``, or ``m_count`` rounded values from m_min to m_max."""
    if config.ms:
        return list(config.ms)
    k = max(1, config.m_count)
    step = (config.m_max - config.m_min) / max(1, k - 1)
    return sorted({round(config.m_min + i * step) for i in range(k)})


def chains(config: Config) -> list[dict[str, Any]]:
    """One curve per (task, d): ``[{"task": t, "d": d}, ...]`` (no "task" key when ``tasks = ()``)."""
    tasks = [{"task": t} for t in config.tasks] or [{}]
    return [{**t, "d": d} for t in tasks for d in config.dims or (config.d,)]


def bounds(config: Config, d: int) -> Bounds:
    return Bounds(config.m_min, config.m_max, config.m_start or d, config.bracket, config.tolerance)


def points(config: Config) -> list[dict[str, Any]]:
    """A grid: every (task, d, m), task- then d-major. A search: the first m of every (task, d)."""
    if searching(config):
        return [{**c, "m": next_probe([], config.threshold, bounds(config, c["d"]))} for c in chains(config)]
    return [{**c, "m": m} for c in chains(config) for m in m_values(config)]


def _key(config: Any) -> tuple[str, int]:
    return config.task, config.d


def next_points(config: Config, finished: list[tuple[Any, dict[str, Any]]], pending: list[Any]) -> list[dict[str, Any]]:
    """The search's next probe for every (task, d) with none running: bracket, then bisect the
    accuracy-``threshold`` crossing (:func:`explorer.experiments.threshold.next_probe`)."""
    busy = {_key(c) for c in pending}
    out = []
    for chain in chains(config):
        key = (chain.get("task", config.task), chain["d"])
        if key in busy:
            continue
        curve = [(c.m, float(s["accuracy"])) for c, s in finished if _key(c) == key and s.get("accuracy") is not None]
        m = next_probe(curve, config.threshold, bounds(config, chain["d"]))
        if m is not None:
            out.append({**chain, "m": m})
    return out


def expected_points(config: Config) -> list[dict[str, Any]]:
    """The probes a search makes if m_thr(d) = d (about what the paper found): for the estimate."""
    return [{**c, "m": m} for c in chains(config)
            for m in simulate(lambda m, d=c["d"]: m <= d, config.threshold, bounds(config, c["d"]))]


def summarize(config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
    """Accuracy per (task, d, m), m_thr(d) and its fit per task (:mod:`explorer.experiments.counting_report`)."""
    return counting_report.summarize(config, finished, "bisect" if searching(config) else "grid")


class CountingExperiment:
    """The counting study as an experiment object (see :mod:`explorer.experiments.base`)."""

    name = "counting"
    description = "Yehudai et al. 2024: can a d-wide 2-layer transformer count (QC/MFC) over m tokens?"
    Config = Config
    presets = PRESETS
    rules = rules.COUNTING

    def points(self, config: Config) -> list[dict[str, Any]]:
        return points(config)

    def searches(self, config: Config) -> bool:
        return searching(config)

    def next_points(self, config: Config, finished: list[tuple[Any, dict[str, Any]]],
                    pending: list[Any]) -> list[dict[str, Any]]:
        return next_points(config, finished, pending)

    def expected_points(self, config: Config) -> list[dict[str, Any]]:
        return expected_points(config)

    def run(self, config: Config, ctx: RunContext) -> RunOutput:
        return run(config, ctx)

    def summarize(self, config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
        return summarize(config, finished)


EXPERIMENT = CountingExperiment()
