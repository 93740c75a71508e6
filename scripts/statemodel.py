"""A generative model of one layer's hidden states, for benchmarks at sizes no corpus has.

How rows are made (``StateModel.sampler``), all seeded:

* every row is ``mean + centre[token] + noise``: the layer's mean state (the large shared
  direction that makes raw cosines of random pairs ~0.8-0.97 in middle layers), plus a
  per-"token" centre, plus in-context variation;
* covariance: the top ``r`` principal directions of the centred rows with their variances,
  and an isotropic residual carrying the rest of the variance; the share ``within`` of it
  is variation around a token's centre, the rest is spread between centres (so centres
  ~ N(0, (1 - within) C) and noise ~ N(0, within C), and rows have covariance C);
* tokens: ``K = tokens_ref * sqrt(n / rows_ref)`` centres (Heaps' law with exponent 0.5,
  from the distinct tokens of the fitted corpus) drawn with probabilities ~ rank^-0.5. (With
  Zipf's 1/rank the few heaviest centres dominated the covariance: on a test layer the
  synthetic top-1 variance share came out 3x the real one.)

:func:`fit` takes the mean, principal directions, variances, within-token share and token
counts from a stored layer, leaving position-0 (BOS) states out as ``states-stats`` does
(their norm is ~15x any other's). :func:`builtin` is the fallback when no corpus is
stored: the same model with the constants fitted at layer 9 of the bundled sample
(Gemma 3 270M), with seeded random orthonormal principal directions and a mean at the
fitted angle to the top one (cosine 0.92).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANK = 64  # principal directions kept; the rest of the variance is an isotropic residual
ZIPF = 0.5  # token probability ~ rank^-ZIPF: heavy-tailed counts, yet enough effective centres
FIT_ROWS = 20_000  # rows sampled (seeded) for the principal directions
# Fitted at layer 9 of the bundled sample (4,410 states, Gemma 3 270M, d = 640), BOS left
# out: `python scripts/bench_scale.py --root R --corpus sample --layer 9 --fit-only`.
BUILTIN = {
    "dim": 640, "mean_norm": 5560.1, "var_total": 1843101.8, "resid_share": 0.11872, "within": 0.2682,
    "mean_top_cos": 0.9166,
    "measured": {"mean_cos_raw": 0.9687, "top1_share": 0.5725, "top10_share": 0.7051},  # the real layer's
    "rows_ref": 4090, "tokens_ref": 2225,
    "top_shares": [
        0.57252, 0.04317, 0.02138, 0.01751, 0.01247, 0.00847, 0.00783, 0.00761, 0.00732, 0.00677, 0.00653,
        0.00636, 0.00613, 0.00573, 0.00565, 0.00542, 0.00531, 0.00511, 0.00496, 0.00482, 0.00473, 0.00459,
        0.00450, 0.00427, 0.00410, 0.00404, 0.00397, 0.00382, 0.00365, 0.00358, 0.00354, 0.00344, 0.00333,
        0.00329, 0.00320, 0.00305, 0.00290, 0.00284, 0.00268, 0.00266, 0.00258, 0.00252, 0.00246, 0.00241,
        0.00240, 0.00234, 0.00219, 0.00212, 0.00210, 0.00206, 0.00203, 0.00201, 0.00193, 0.00190, 0.00187,
        0.00184, 0.00177, 0.00175, 0.00172, 0.00167, 0.00162, 0.00160, 0.00157, 0.00155
    ],
}


@dataclass
class StateModel:
    mean: np.ndarray  # (d,) the layer's mean state
    dirs: np.ndarray  # (r, d) orthonormal principal directions
    var: np.ndarray  # (r,) variance along each
    resid: float  # variance per dimension of the isotropic residual
    within: float  # share of the centred variance around a token's centre
    rows_ref: int  # rows of the fitted corpus ...
    tokens_ref: int  # ... and its distinct tokens (Heaps' law for K)
    source: str

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def tokens(self, n: int) -> int:
        return max(2, int(round(self.tokens_ref * np.sqrt(n / self.rows_ref))))

    def _gauss(self, rng, m: int, scale: float) -> np.ndarray:
        """m rows ~ N(0, scale * C)."""
        z = rng.standard_normal((m, len(self.var)), dtype=np.float32) * np.sqrt(scale * self.var).astype(np.float32)
        out = rng.standard_normal((m, self.dim), dtype=np.float32)
        out *= np.float32(np.sqrt(scale * self.resid))
        out += z @ self.dirs
        return out

    def sampler(self, n: int, seed: int):
        """A function ``rows(m, rng)`` drawing rows from the model sized for ``n`` rows
        (its token centres and their Zipf weights are drawn once, from ``seed``)."""
        rng = np.random.default_rng(seed)
        k = self.tokens(n)
        centres = self._gauss(rng, k, 1.0 - self.within) + self.mean
        p = np.arange(1, k + 1) ** -ZIPF
        cdf = np.cumsum(p / p.sum())

        def rows(m: int, rng) -> np.ndarray:
            which = np.minimum(np.searchsorted(cdf, rng.random(m)), k - 1)
            out = self._gauss(rng, m, self.within)
            out += centres[which]
            return out

        return rows

    def describe(self) -> dict:
        total = float(self.var.sum() + self.resid * (self.dim - len(self.var)))
        return {
            "source": self.source, "dim": self.dim, "rank": len(self.var), "mean_norm": float(np.linalg.norm(self.mean)),
            "var_total": total, "top1_share": float(self.var[0] / total), "top10_share": float(self.var[:10].sum() / total),
            "within_token_share": self.within, "tokens": f"{self.tokens_ref} * sqrt(n / {self.rows_ref}), Zipf rank^-{ZIPF}",
            "how": "row = layer mean + token centre ~ N(0,(1-w)C) + noise ~ N(0,wC); C = top-r principal "
                   "directions with their variances + isotropic residual",
        }


def _within_share(x: np.ndarray, tokens: np.ndarray) -> float:
    """Share of the centred variance around each token's mean, over tokens seen twice or
    more (unbiased: each token's sum of squares times n_t / (n_t - 1))."""
    _, inv, counts = np.unique(tokens, return_inverse=True, return_counts=True)
    keep = counts[inv] >= 2
    x, inv = x[keep], inv[keep]
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, inv, x)
    means = sums / counts[:, None]
    ss = ((x - means[inv]) ** 2).sum(axis=1)
    corr = counts[inv] / (counts[inv] - 1.0)
    return float((ss * corr).sum() / (x**2).sum()) if len(x) else 0.5


def fit(matrix: np.ndarray, positions: np.ndarray, token_ids: np.ndarray, source: str, seed: int = 0) -> StateModel:
    """Fit the model to a stored layer (rows at position 0 left out)."""
    keep = np.flatnonzero(positions > 0) if (positions > 0).sum() >= 2 else np.arange(len(positions))
    if len(keep) > FIT_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(keep, FIT_ROWS, replace=False))
    x = np.asarray(matrix[keep], dtype=np.float64)
    mean = x.mean(axis=0)
    x -= mean
    eig, vec = np.linalg.eigh(x.T @ x / max(len(x) - 1, 1))
    eig, vec = eig[::-1].clip(min=0), vec[:, ::-1]
    r = min(RANK, x.shape[1] - 1)
    resid = float(eig[r:].sum() / (x.shape[1] - r))
    within = _within_share(x, token_ids[keep])
    return StateModel(mean.astype(np.float32), vec[:, :r].T.astype(np.float32).copy(), eig[:r].astype(np.float32), resid,
                      within, len(keep), int(np.unique(token_ids[keep]).size), source)


def builtin(seed: int = 0) -> StateModel:
    """The fallback: constants fitted on the sample, random (seeded) directions."""
    b = BUILTIN
    d, r = b["dim"], len(b["top_shares"])
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, r + 1)))
    a = b["mean_top_cos"]  # the mean state leans on the top principal direction
    mean = (b["mean_norm"] * (a * q[:, 1] + np.sqrt(1 - a * a) * q[:, 0])).astype(np.float32)
    var = (np.array(b["top_shares"]) * b["var_total"]).astype(np.float32)
    resid = b["resid_share"] * b["var_total"] / (d - r)
    return StateModel(mean, q[:, 1:].T.astype(np.float32).copy(), var, resid, b["within"], b["rows_ref"], b["tokens_ref"],
                      "built-in (fitted to the bundled sample, layer 9; random directions)")


def pair_stats(x: np.ndarray, mean: np.ndarray, seed: int = 0, pairs: int = 10_000) -> dict:
    """Mean cosine of seeded random pairs (raw) and the top-1 / top-10 share of the
    centred variance: what the synthetic rows are checked against."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), pairs)
    j = (i + rng.integers(1, len(x), pairs)) % len(x)
    a, b = np.asarray(x[i], dtype=np.float64), np.asarray(x[j], dtype=np.float64)
    cos = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    c = np.asarray(x, dtype=np.float64) - mean
    eig = np.sort(np.linalg.eigvalsh(c.T @ c))[::-1].clip(min=0)
    return {"mean_cos_raw": float(cos.mean()), "top1_share": float(eig[0] / eig.sum()),
            "top10_share": float(eig[:10].sum() / eig.sum())}
