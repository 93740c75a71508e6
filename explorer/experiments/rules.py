"""The built-in experiments' rules (see :mod:`explorer.experiments.checks`): setting
ranges, settings a sweep's grid overrides, and cost models.

The cost models are rough (a factor of two either way) and were calibrated on one core of
a shared 2-core CPU (torch, float32); a GPU or a faster CPU finishes sooner. They say
whether a sweep takes seconds, minutes or days, nothing finer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError
from explorer.experiments.checks import Rules, above, at_least, between, each, one_of, problem, show

BIG = 1_000_000  # an upper bound for sizes that would only exhaust memory
SEED = at_least(0, 2**32 - 1)

# -- counting ----------------------------------------------------------------------------

COUNTING_CHECKS = {
    "task": one_of("qc", "mfc"), "d": at_least(1, 65536), "m": at_least(1, BIG), "tasks": each(one_of("qc", "mfc")),
    "dims": each(at_least(1, 65536)), "m_search": one_of("auto", "bisect", "grid"), "ms": each(at_least(1, BIG)),
    "m_start": at_least(0, BIG), "bracket": above(1, 100), "tolerance": between(0, 1), "m_min": at_least(1, BIG),
    "m_max": at_least(1, BIG), "m_count": at_least(1, 10_000),
    "n_factor": at_least(1, 10_000), "count_cap": at_least(0, BIG), "layers": at_least(1, 1000),
    "heads": at_least(1, 65536), "mlp_ratio": at_least(1, 1000), "lr": above(0, 10),
    "lr_schedule": one_of("constant", "cosine"), "batch": at_least(1, BIG), "steps": at_least(1, 10**10),
    "test_samples": at_least(1, 10**8), "eval_every": at_least(1, 10**10), "threshold": above(0, 1),
    "stop_at": between(0, 1), "restarts": at_least(1, 100), "seed": SEED,
    "threads": at_least(0, 1024),
}


def counting_searches(c: Any) -> bool:
    """Does this counting sweep search m_thr (m_search=bisect, or auto without ms) rather than run a grid?"""
    return c.m_search == "bisect" or (c.m_search == "auto" and not c.ms)


def counting_validate(c: Any) -> None:
    if c.d % c.heads:
        raise problem("heads", c.heads, f"d={c.d} is not divisible by it")
    if (counting_searches(c) or not c.ms) and c.m_min > c.m_max:
        raise problem("m_min", c.m_min, f"is larger than m_max={c.m_max}")


def counting_unused(c: Any) -> dict[str, str]:
    out = {"m": "the sweep sets m at every point (a search of m_thr, or a grid: ms); for one m use --set ms=N"}
    if c.dims:
        out["d"] = f"the dims grid ({show(c.dims)}) sets d at every point; for one width use --set dims=N"
    if c.tasks:
        out["task"] = f"tasks ({show(c.tasks)}) sets the task at every point; for one task use --set tasks=qc"
    if counting_searches(c):
        for name in ("ms", "m_count"):
            out[name] = "m_search=bisect searches m between m_min and m_max; for a grid use --set m_search=grid"
    else:
        for name in ("m_start", "bracket", "tolerance"):
            out[name] = "a grid of m is run (ms given, or m_search=grid), no search"
        if c.ms:
            for name in ("m_min", "m_max", "m_count"):
                out[name] = f"ms ({show(c.ms)}) is given, so the m_min..m_max range is not used"
    return out


def counting_estimate(c: Any) -> float:
    """Per step: a fixed 2.5 ms, the dense layers (~B L d^2) and attention (~B heads L^2, slower
    once its scores outgrow the caches); evaluations are forward passes over the test set."""
    seq = c.n_factor * c.m + 2
    scores = c.batch * c.heads * seq * seq
    layer = 0.37e-9 * (4 + 2 * c.mlp_ratio) * c.batch * seq * c.d**2 + 7.3e-9 * scores * min(2.3, 1 + scores / 5e7)
    work = c.layers * layer
    evals = c.steps // c.eval_every + 1
    return (1.0 + c.steps * (2.5e-3 + work) + evals * c.test_samples / c.batch * work / 3) * _tries(c)


def _tries(c: Any) -> float:
    """Models trained per point, on average: a point below the threshold is trained ``restarts`` times
    (about half the points of a search are)."""
    return 1.0 + (max(1, c.restarts) - 1) / 2


def counting_gpu_estimate(c: Any) -> float:
    """One GPU, not measured (no GPU was at hand): a step of these small models is bound by
    kernel launches (~4 ms for forward, backward and Adam over 2 layers) plus its arithmetic
    at an effective 20 TFLOP/s; evaluations are forward passes."""
    seq = c.n_factor * c.m + 2
    flops = 2 * c.layers * c.batch * seq * ((4 + 2 * c.mlp_ratio) * c.d**2 + 2 * seq * c.d)
    step = 4e-3 + 3 * flops / 20e12
    evals = c.steps // c.eval_every + 1
    return 5.0 + (c.steps * step + evals * (c.test_samples / c.batch) * (1.5e-3 + flops / 20e12)) * _tries(c)


COUNTING = Rules(COUNTING_CHECKS, counting_validate, counting_unused, counting_estimate, counting_gpu_estimate)

# -- concepts ----------------------------------------------------------------------------

CONCEPTS_CHECKS = {
    "m": at_least(1, 10), "d": at_least(1, 65536), "edge_prob": between(0, 1), "p_low": between(0, 1),
    "p_high": between(0, 1), "reveal_prob": between(0, 1), "n_condition_sets": at_least(0, BIG),
    "max_revealed": at_least(0, 10), "targets": one_of("sampled", "soft"), "encoder": one_of("mlp", "sum"),
    "hidden": at_least(1, 65536), "optimizer": one_of("adam", "sgd"), "lr": above(0, 100),
    "steps": at_least(1, 10**10), "batch": at_least(1, BIG), "eval_every": at_least(1, 10**10),
    "threads": at_least(0, 1024), "graph_seed": SEED, "d_grid": each(at_least(1, 65536)),
}


def concepts_validate(c: Any) -> None:
    if c.p_low > c.p_high:
        raise problem("p_low", c.p_low, f"is larger than p_high={c.p_high}")
    if c.max_revealed > c.m:
        raise problem("max_revealed", c.max_revealed, f"is larger than m={c.m}")


def concepts_unused(c: Any) -> dict[str, str]:
    out = {}
    if c.d_grid:
        out["d"] = f"the d_grid ({show(c.d_grid)}) sets d at every point; for one d use --set d_grid=N"
    kinds = set(c.incomplete_grid) if c.incomplete_grid else {c.incomplete}
    if c.incomplete_grid:
        out["incomplete"] = (f"the incomplete_grid ({show(c.incomplete_grid)}) sets it at every point; "
                             "for one kind use --set incomplete_grid=true (or false)")
    if True not in kinds:
        for name in ("n_condition_sets", "max_revealed"):
            out[name] = "only incomplete condition sets use it, and no point has them"
    if False not in kinds:
        out["reveal_prob"] = "only complete condition sets use it, and no point has them"
    if c.encoder == "sum":
        out["hidden"] = "encoder=sum has no hidden layer"
    return out


def concepts_estimate(c: Any) -> float:
    """Per step ~0.8 ms plus the MLP and the 2^m x d unembedding; per checkpoint the exact loss
    over 3^m contexts x 2^m tokens."""
    step = 8e-4 + 4e-10 * c.batch * (c.m * c.hidden + c.hidden * c.d + 2**c.m * c.d)
    checkpoint = 5e-3 + 2e-9 * 3**c.m * 2**c.m * (c.d + c.m)
    return 1.0 + c.steps * step + (c.steps // c.eval_every + 12) * checkpoint


CONCEPTS = Rules(CONCEPTS_CHECKS, concepts_validate, concepts_unused, concepts_estimate)

# -- word2vec and co-occurrence ------------------------------------------------------------


def _archs(value: str) -> str | None:
    archs = [a.strip() for a in value.split(",")]
    bad = [a for a in archs if a not in ("sg", "cbow")]
    return f"must be sg, cbow or sg,cbow (not {bad[0]!r})" if bad else None


WORD2VEC_CHECKS = {
    "arch": _archs, "dim": at_least(1, 65536), "window": at_least(1, 1000), "negative": at_least(1, 1000),
    "min_count": at_least(1, 10**12), "sample": between(0, 1), "epochs": at_least(1, 100_000),
    "lr": at_least(0, 10), "batch": at_least(1, BIG), "seed": SEED, "threads": at_least(0, 1024),
    "kernel": one_of("auto", "numba", "batched"),
}


def readable(name: str, value: str, what: str) -> Path:
    """The file named by a setting, checked: it exists, is a file and can be read."""
    path = Path(value).expanduser()
    if not path.exists():
        raise problem(name, value, f"{what} file not found")
    if not path.is_file():
        raise problem(name, value, "is not a file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise problem(name, value, f"cannot read it ({exc.strerror or exc})") from None
    return path


def _corpus(name: str, value: str) -> None:
    from explorer.experiments.word2vec import resolve_corpus

    if value not in ("", "lee", "sample"):
        readable(name, value, "corpus")
    try:
        resolve_corpus(value)
    except ExplorerError as exc:
        raise problem(name, value, str(exc)) from None


def _model_name(value: str) -> None:
    from explorer.store.interchange.encoding import check_model_name

    if value:
        try:
            check_model_name(value)
        except ExplorerError as exc:
            raise problem("name", value, str(exc)) from None


def _kernel(c: Any) -> None:
    from importlib.util import find_spec

    if c.kernel == "numba" and c.shared_negatives:
        raise problem("kernel", c.kernel, "draws negatives per pair; shared_negatives needs kernel=batched")
    if c.kernel == "numba" and find_spec("numba") is None:
        raise problem("kernel", c.kernel, "needs numba, which is not installed: pip install 'explorer[fast]'")


def word2vec_validate(c: Any) -> None:
    _kernel(c)
    _corpus("corpus", c.corpus)
    _model_name(c.name)
    if c.analogies not in ("", "-"):
        readable("analogies", c.analogies, "analogy")
    if c.pairs not in ("", "-"):
        for p in (p for p in c.pairs.split(",") if p):
            readable("pairs", p, "word-pair")


def word2vec_unused(c: Any) -> dict[str, str]:
    out = {} if "sg" in c.arch else {"shared_negatives": "only skip-gram (arch=sg) shares negatives"}
    if c.kernel == "numba":
        out.update(batch="the numba kernel trains one pair at a time", threads="the numba kernel runs on one thread")
    return out


def _corpus_words(corpus: str) -> int:
    """Words in a corpus, guessed from its size (about 6 bytes a word in English)."""
    from explorer.experiments.word2vec import resolve_corpus

    try:
        return max(1, Path(resolve_corpus(corpus)[0]).stat().st_size // 6)
    except (ExplorerError, OSError):
        return 100_000


def word2vec_estimate(c: Any) -> float:
    """Skip-gram ~1e7 / dim words/s at window 5, negative 5 (scaling with both), twice
    that with the numba kernel (auto: when numba is installed); CBOW 3x that."""
    from importlib.util import find_spec

    rate = 1e7 / c.dim * 5 / c.window * 6 / (c.negative + 1)
    if c.kernel == "numba" or (c.kernel == "auto" and not c.shared_negatives and find_spec("numba") is not None):
        rate *= 2
    if c.arch == "cbow":
        rate *= 3
    return 2.0 + _corpus_words(c.corpus) * c.epochs / rate + (5.0 if c.analogies != "-" else 0.0)


WORD2VEC = Rules(WORD2VEC_CHECKS, word2vec_validate, word2vec_unused, word2vec_estimate)

COOCCURRENCE_CHECKS = {
    "window": at_least(1, 1000), "weighting": one_of("flat", "harmonic"), "min_count": at_least(1, 10**12),
    "max_vocab": at_least(1, 10_000_000), "cds": above(0, 10), "dim": at_least(1, 65536), "alpha": between(0, 10),
    "svd": one_of("auto", "full", "randomized"), "full_limit": at_least(1, 100_000), "oversample": at_least(0, 10_000),
    "power_iters": at_least(0, 1000), "seed": SEED, "markers": one_of("auto", "on", "off"),
}


def cooccurrence_validate(c: Any) -> None:
    if c.corpus != "glitters":
        _corpus("corpus", c.corpus)
    _model_name(c.name)


def cooccurrence_unused(c: Any) -> dict[str, str]:
    out = {} if c.ppmi else {"cds": "it smooths PPMI, and ppmi is false"}
    if c.svd == "full":
        out.update({k: "svd=full does not sample" for k in ("oversample", "power_iters", "full_limit")})
    elif c.svd == "randomized":
        out["full_limit"] = "svd=randomized never uses the full SVD"
    return out


def cooccurrence_estimate(c: Any) -> float:
    """A full SVD of an n x n matrix ~4e-9 n^3 s; n guessed from the corpus size."""
    if c.corpus == "glitters":
        return 1.0
    n = min(c.max_vocab, int(30 * _corpus_words(c.corpus) ** 0.5 / c.min_count) + 1)
    if c.svd == "full" or (c.svd == "auto" and n <= c.full_limit):
        return 2.0 + 4e-9 * n**3
    return 2.0 + 2e-8 * n * 50 * (c.dim + c.oversample) * (2 * c.power_iters + 2)


COOCCURRENCE = Rules(COOCCURRENCE_CHECKS, cooccurrence_validate, cooccurrence_unused, cooccurrence_estimate)
