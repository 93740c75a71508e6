"""Linear representations from a latent binary-concept model (Jiang et al. 2024).

"On the Origins of Linear Representations in Large Language Models" models next-token
prediction with latent binary concepts ``C1..Cm``. This experiment simulates it:

* **Latent model.** A random DAG over the concepts (each edge of a random topological
  order kept with probability ``edge_prob``); ``P(Ci=1 | parents)`` drawn uniformly from
  ``[p_low, p_high]`` (default [0.3, 0.7]) for every parent configuration. Concept vectors
  are drawn by ancestral sampling. The next token ``y`` *is* the full concept vector: one
  of ``2^m`` tokens, token id ``sum_i c_i 2^i``.
* **Contexts** reveal a subset ``S`` of the concepts, drawn independently of their values:
  the context is the vector ``v`` in ``{-1, 0, +1}^m`` (0 = not revealed, +-1 = the
  value). *Complete* condition sets: each concept is revealed independently with
  probability ``reveal_prob``, so every subset (in particular every "all concepts but
  one", where the log-odds of the two tokens differing in concept i is exactly the
  conditional log-odds of ``Ci`` that the paper's log-odds-matching argument uses) has
  positive probability. *Incomplete* (``incomplete=True``): the condition set is drawn
  uniformly from a fixed random family of ``n_condition_sets`` (default m) distinct
  subsets of sizes 1..``max_revealed`` (default m // 2). No context then pins down all
  concepts but one, and most pairs of concepts are never revealed together, so the
  model never sees many of the conditionals the theory relies on.
* **Targets.** ``targets="sampled"`` (default, as in next-token data): the label is the
  ancestrally sampled concept vector itself, which is a draw from the exact conditional
  ``P(y | revealed values)``. ``targets="soft"``: cross-entropy against that exact
  conditional, computed by enumerating the joint.
* **Model.** ``f(v)``: an MLP over ``v`` (``encoder="mlp"``) or a sum of learned
  (concept, value) embeddings (``encoder="sum"``) -> ``R^d``; unembedding ``g``: a
  ``2^m x d`` matrix; ``p(y | v) = softmax_y(g(y) . f(v))``, softmax cross-entropy.

Metrics (``ctx.metric``, at step 0 = random init and every ``eval_every`` steps):

* ``loss``: the *exact* population cross-entropy, summed over every context with its
  probability (deterministic; ``entropy`` is its floor, ``excess_loss`` = loss - floor =
  expected KL). ``train_loss``: mean minibatch loss since the last checkpoint.
* ``linearity/c{i}``: the ``2^(m-1)`` differences ``g(y') - g(y)`` over token pairs that
  differ only in concept i (``y`` has ``Ci=0``): their mean pairwise cosine (all pairs
  ``k != l``), 1 = one direction = a linear representation, ~0 for random vectors.
  ``linearity`` is the mean over concepts.
* ``orthogonality``: mean ``|cos|`` between the mean (unit) difference directions of
  different concepts (near 0 = orthogonal). ``orthogonality/causal``: the same after
  whitening ``g`` by its covariance over the vocabulary (the "causal inner product" of
  Park et al. 2023, under which concept directions are expected to be orthogonal).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from explorer.experiments import rules
from explorer.experiments.base import RunContext, RunOutput, Summary
from explorer.query.directions import consistency, cosine_matrix, mean_abs_offdiag, mean_direction


@dataclass(frozen=True)
class Config:
    m: int = 6  # binary concepts; 2^m next tokens
    d: int = 8  # representation dimension (d < m is a variant)
    edge_prob: float = 0.5  # DAG edge probability
    p_low: float = 0.3  # conditional Bernoulli parameters ~ U[p_low, p_high]
    p_high: float = 0.7
    incomplete: bool = False  # fixed family of small condition sets (see module doc)
    reveal_prob: float = 0.5  # complete: each concept revealed with this probability
    n_condition_sets: int = 0  # incomplete: family size (0: m)
    max_revealed: int = 0  # incomplete: largest condition set (0: m // 2)
    targets: str = "sampled"  # sampled | soft
    encoder: str = "mlp"  # mlp | sum
    hidden: int = 64
    optimizer: str = "adam"  # adam | sgd
    lr: float = 0.01
    steps: int = 3000
    batch: int = 256
    eval_every: int = 100
    threads: int = 1  # torch threads (0: ctx.threads); >1 measured 5-9x slower here on a busy 2-core box
    graph_seed: int = 0  # the latent model (same DAG for every variant); training uses ctx.seed
    d_grid: tuple[int, ...] = (3, 8)  # points: d values ...
    incomplete_grid: tuple[bool, ...] = (False, True)  # ... x complete/incomplete


PRESETS = {
    "smoke": {"m": 4, "d_grid": (3, 8), "steps": 8000, "batch": 128, "hidden": 32, "eval_every": 250},
    "paper": {"m": 8, "d_grid": (4, 8, 16), "steps": 20000, "batch": 512, "hidden": 128, "eval_every": 500},
}


# -- the latent model (numpy) ------------------------------------------------------------


@dataclass(frozen=True)
class LatentModel:
    """Binary concepts on a DAG with conditional probability tables."""

    m: int
    order: tuple[int, ...]  # a topological order
    parents: tuple[tuple[int, ...], ...]  # parents[i], sorted
    cpt: tuple[np.ndarray, ...]  # cpt[i][k] = P(Ci=1 | parent config k), k = sum_j c_{pa_j} 2^j

    @property
    def adjacency(self) -> np.ndarray:
        a = np.zeros((self.m, self.m), dtype=bool)
        for i, ps in enumerate(self.parents):
            a[list(ps), i] = True
        return a

    def _config(self, c: np.ndarray, i: int) -> np.ndarray:
        k = np.zeros(c.shape[:-1], dtype=np.int64)
        for j, p in enumerate(self.parents[i]):
            k += c[..., p].astype(np.int64) << j
        return k

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` concept vectors (``n x m`` of 0/1) by ancestral sampling."""
        c = np.zeros((n, self.m), dtype=np.int8)
        for i in self.order:
            c[:, i] = rng.random(n) < self.cpt[i][self._config(c, i)]
        return c

    def joint(self) -> np.ndarray:
        """``P(y)`` for every token ``y = sum_i c_i 2^i`` by enumeration."""
        c = token_bits(self.m)
        p = np.ones(len(c))
        for i in range(self.m):
            q = self.cpt[i][self._config(c, i)]
            p *= np.where(c[:, i] == 1, q, 1 - q)
        return p


def random_latent_model(m: int, edge_prob: float, rng: np.random.Generator,
                        p_low: float = 0.3, p_high: float = 0.7) -> LatentModel:
    """A random DAG (edges along a random order) with CPT entries ~ U[p_low, p_high]."""
    order = tuple(int(i) for i in rng.permutation(m))
    parents = [[] for _ in range(m)]
    for a, b in itertools.combinations(range(m), 2):  # position a before position b
        if rng.random() < edge_prob:
            parents[order[b]].append(order[a])
    parents_t = tuple(tuple(sorted(p)) for p in parents)
    cpt = tuple(rng.uniform(p_low, p_high, size=2 ** len(p)) for p in parents_t)
    return LatentModel(m, order, parents_t, cpt)


def token_bits(m: int) -> np.ndarray:
    """``(2^m, m)`` bits of every token id."""
    return ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1).astype(np.int8)


def all_contexts(m: int) -> np.ndarray:
    """Every context vector in ``{-1,0,1}^m``, row k has ``k = sum_i (v_i + 1) 3^i``."""
    k = np.arange(3 ** m)
    return ((k[:, None] // 3 ** np.arange(m)) % 3 - 1).astype(np.int8)


def context_index(v: np.ndarray) -> np.ndarray:
    return ((v.astype(np.int64) + 1) * 3 ** np.arange(v.shape[-1])).sum(-1)


def condition_family(m: int, n_sets: int, max_size: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """A fixed random family of distinct condition sets of sizes 1..max_size that together
    reveal every concept somewhere (when ``n_sets * max_size >= m`` allows it)."""
    pool = [s for r in range(1, max_size + 1) for s in itertools.combinations(range(m), r)]
    for _ in range(1000):
        pick = [pool[i] for i in rng.choice(len(pool), size=min(n_sets, len(pool)), replace=False)]
        if len(set().union(*pick)) == m:
            break
    return sorted(pick, key=lambda s: (len(s), s))


@dataclass
class Task:
    """The latent model plus the context distribution and exact conditionals."""

    latent: LatentModel
    family: list[tuple[int, ...]] | None  # None = complete condition sets
    reveal_prob: float
    contexts: np.ndarray  # all 3^m context vectors
    p_context: np.ndarray  # probability of each
    conditional: np.ndarray  # (3^m, 2^m) P(y | context), rows of impossible contexts zero

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(context vectors, next tokens): concepts by ancestral sampling, then a reveal."""
        m = self.latent.m
        c = self.latent.sample(n, rng)
        if self.family is None:
            shown = rng.random((n, m)) < self.reveal_prob
        else:
            masks = np.zeros((len(self.family), m), dtype=bool)
            for k, s in enumerate(self.family):
                masks[k, list(s)] = True
            shown = masks[rng.integers(len(self.family), size=n)]
        v = np.where(shown, 2 * c - 1, 0).astype(np.int8)
        y = (c.astype(np.int64) << np.arange(m)).sum(1)
        return v, y

    @property
    def entropy(self) -> float:
        """The loss floor: expected entropy of the true next-token conditional."""
        t = self.conditional
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(t > 0, t * np.log(t), 0).sum(1)
        return float((self.p_context * h).sum())


def make_task(config: Config) -> Task:
    rng = np.random.default_rng(config.graph_seed)
    m = config.m
    latent = random_latent_model(m, config.edge_prob, rng, config.p_low, config.p_high)
    family = None
    if config.incomplete:
        family = condition_family(m, config.n_condition_sets or m, config.max_revealed or max(1, m // 2), rng)
    py = latent.joint()
    ctx = all_contexts(m)
    bits = 2 * token_bits(m) - 1
    agree = np.all((ctx[:, None, :] == 0) | (ctx[:, None, :] == bits[None, :, :]), axis=2)
    joint = agree * py[None, :]
    p_values = joint.sum(1)  # P(c_S = revealed values)
    cond = joint / p_values[:, None]
    shown = ctx != 0
    if family is None:
        k = shown.sum(1)
        p_set = config.reveal_prob ** k * (1 - config.reveal_prob) ** (m - k)
    else:
        keys = {s: 1.0 / len(family) for s in family}
        p_set = np.array([keys.get(tuple(np.flatnonzero(r)), 0.0) for r in shown])
    return Task(latent, family, config.reveal_prob, ctx, p_set * p_values, cond)


# -- measures (numpy) ----------------------------------------------------------------------


def concept_pairs(m: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per concept i: token ids with ``Ci=0`` and their partners with ``Ci=1``."""
    ids = np.arange(2 ** m)
    return [(ids[(ids >> i) & 1 == 0], ids[(ids >> i) & 1 == 0] | (1 << i)) for i in range(m)]


def measure(g: np.ndarray) -> dict[str, Any]:
    """Linearity per concept and orthogonality (Euclidean and causal) of an unembedding."""
    g = np.asarray(g, dtype=np.float64)
    m = int(round(np.log2(len(g))))
    pairs = concept_pairs(m)
    lin = [consistency(g[b] - g[a]) for a, b in pairs]
    ortho = mean_abs_offdiag(cosine_matrix(np.array([mean_direction(g[b] - g[a]) for a, b in pairs])))
    centred = g - g.mean(0)
    w, u = np.linalg.eigh(centred.T @ centred / len(g))
    keep = w > w.max() * 1e-8
    whitened = centred @ (u[:, keep] / np.sqrt(w[keep]))  # coordinates under Cov(g)^-1
    ortho_c = mean_abs_offdiag(cosine_matrix(np.array([mean_direction(whitened[b] - whitened[a]) for a, b in pairs])))
    return {"linearity": float(np.mean(lin)), "per_concept": [float(x) for x in lin],
            "orthogonality": ortho, "orthogonality_causal": ortho_c}


# -- training (torch, imported inside) -------------------------------------------------------


def build_concept_model(config: Config):
    import torch
    from torch import nn

    m, d = config.m, config.d

    class ConceptLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if config.encoder == "mlp":
                self.encoder = nn.Sequential(nn.Linear(m, config.hidden), nn.GELU(), nn.Linear(config.hidden, d))
            elif config.encoder == "sum":
                self.encoder = nn.Linear(2 * m, d)  # one embedding per (concept, value) pair, summed
            else:
                from explorer.errors import ExplorerError

                raise ExplorerError(f"unknown encoder {config.encoder!r}; use mlp or sum")
            self.unembed = nn.Parameter(torch.randn(2 ** m, d) / d ** 0.5)

        def forward(self, v: "torch.Tensor") -> "torch.Tensor":
            x = torch.cat([(v > 0).float(), (v < 0).float()], -1) if config.encoder == "sum" else v.float()
            return self.encoder(x) @ self.unembed.T

    return ConceptLM()


def variant_label(config: Config) -> str:
    return f"{'incomplete' if config.incomplete else 'complete'} d={config.d}"


def run(config: Config, ctx: RunContext) -> RunOutput:
    import torch
    import torch.nn.functional as F

    from explorer.errors import ExplorerError

    if config.targets not in ("sampled", "soft") or config.optimizer not in ("adam", "sgd"):
        raise ExplorerError("targets must be sampled or soft, optimizer adam or sgd")
    if not 1 <= config.m <= 10:
        raise ExplorerError("m must be 1..10 (2^m tokens, 3^m contexts are enumerated)")
    torch.set_num_threads(config.threads or ctx.threads or 1)  # tiny matmuls: more threads only spin
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    task = make_task(config)
    model = build_concept_model(config)
    opt_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=config.lr)
    live = task.p_context > 0
    eval_v = torch.from_numpy(task.contexts[live])
    eval_p = torch.from_numpy(task.p_context[live] / task.p_context[live].sum())
    eval_t = torch.from_numpy(task.conditional[live])
    soft = torch.from_numpy(task.conditional).float()
    entropy = task.entropy / task.p_context.sum()
    history: dict[str, list[float]] = {k: [] for k in ("step", "loss", "linearity", "orthogonality",
                                                      "orthogonality_causal", "train_loss")}
    running: list[float] = []

    def checkpoint(step: int) -> dict[str, Any]:
        with torch.no_grad():
            logp = F.log_softmax(model(eval_v).double(), -1)
            loss = float(-(eval_p * (eval_t * logp).sum(-1)).sum())
        meas = measure(model.unembed.detach().numpy())
        train = float(np.mean(running)) if running else loss
        running.clear()
        values = {"loss": loss, "excess_loss": loss - entropy, "train_loss": train, "linearity": meas["linearity"],
                  "orthogonality": meas["orthogonality"], "orthogonality/causal": meas["orthogonality_causal"]}
        values.update({f"linearity/c{i}": x for i, x in enumerate(meas["per_concept"])})
        for name, value in values.items():
            ctx.metric(step, name, value)
        for key in history:
            history[key].append(step if key == "step" else values[key.replace("_causal", "/causal")])
        ctx.progress(step, config.steps, loss=loss, linearity=meas["linearity"])
        return {**values, "per_concept": meas["per_concept"]}

    early = {k * 10 ** e for e in range(1, 7) for k in (1, 2, 5) if k * 10 ** e < config.eval_every}
    start = time.perf_counter()
    first = last = checkpoint(0)
    for step in range(1, config.steps + 1):
        v, y = task.sample(config.batch, rng)
        logits = model(torch.from_numpy(v))
        if config.targets == "soft":
            loss = -(soft[torch.from_numpy(context_index(v))] * F.log_softmax(logits, -1)).sum(-1).mean()
        else:
            loss = F.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if step % 20 == 0:
            ctx.check()
        if step % config.eval_every == 0 or step == config.steps or step in early:
            last = checkpoint(step)
    latent = task.latent
    return RunOutput(summary={
        "variant": variant_label(config), "m": config.m, "d": config.d, "incomplete": config.incomplete,
        "loss": last["loss"], "entropy": entropy, "excess_loss": last["excess_loss"],
        "linearity": last["linearity"], "orthogonality": last["orthogonality"],
        "orthogonality_causal": last["orthogonality/causal"], "linearity_per_concept": last["per_concept"],
        "linearity_init": first["linearity"], "orthogonality_init": first["orthogonality"],
        "dag_edges": [[int(p), i] for i, ps in enumerate(latent.parents) for p in ps],
        "condition_sets": [list(s) for s in task.family] if task.family is not None else None,
        "seconds": time.perf_counter() - start, "history": history,
    })


# -- sweep ----------------------------------------------------------------------------------


def points(config: Config) -> list[dict[str, Any]]:
    """complete/incomplete x d, from ``incomplete_grid`` x ``d_grid`` (empty: keep the field)."""
    incs = list(config.incomplete_grid) or [config.incomplete]
    ds = list(config.d_grid) or [config.d]
    return [{"incomplete": bool(i), "d": int(d)} for i in incs for d in ds]


def summarize(config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
    rows = []
    for cfg, s in finished:
        rows.append({k: s.get(k) for k in ("variant", "m", "d", "incomplete", "loss", "excess_loss", "linearity",
                                           "linearity_init", "orthogonality", "orthogonality_causal")})
    rows.sort(key=lambda r: (bool(r["incomplete"]), r["d"] or 0))
    head = f"{'variant':<16} {'loss':>7} {'excess':>7} {'lin(init)':>9} {'linearity':>9} {'orth':>6} {'orth(C)':>7}"
    lines = [head] + [
        f"{r['variant']:<16} {_f(r['loss'])} {_f(r['excess_loss'])} {_f(r['linearity_init'], 9)} "
        f"{_f(r['linearity'], 9)} {_f(r['orthogonality'], 6)} {_f(r['orthogonality_causal'])}" for r in rows
    ]
    return Summary(result={"runs": rows}, text="\n".join(lines), figure=_figure(finished) if finished else None)


def _f(x: Any, width: int = 7) -> str:
    return f"{x:>{width}.3f}" if isinstance(x, (int, float)) else f"{'-':>{width}}"


def _figure(finished: list[tuple[Any, dict[str, Any]]]):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for _, s in sorted(finished, key=lambda f: (bool(f[1].get("incomplete")), f[1].get("d") or 0)):
        h = s.get("history") or {}
        excess = np.maximum(np.asarray(h.get("loss", []), dtype=float) - float(s.get("entropy") or 0), 1e-6)
        style = "--" if s.get("incomplete") else "-"
        for ax, key in zip(axes, ("linearity", "orthogonality")):
            ax.plot(excess, h.get(key, []), style, marker=".", label=s.get("variant"))
    for ax, key in zip(axes, ("linearity (mean pairwise cos)", "orthogonality (mean |cos|)")):
        ax.set_xlabel("loss - entropy floor (exact; training proceeds to the right)")
        ax.set_ylabel(key)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Latent binary concepts: unembedding geometry vs loss")
    fig.tight_layout()
    return fig


EXPERIMENT = SimpleNamespace(
    name="concepts",
    description=("Jiang et al. 2024: binary concepts on a random DAG, next token = concept vector; "
                 "linearity and orthogonality of unembedding differences vs loss."),
    Config=Config, presets=PRESETS, points=points, run=run, summarize=summarize, rules=rules.CONCEPTS,
)
