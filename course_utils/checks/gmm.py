"""Checks for notebooks 01 (latent variable models) and 02 (EM): the Gaussian mixture."""

from __future__ import annotations

import math

import torch

from .. import gmm
from .core import (
    Case,
    Mistake,
    call_student,
    check_tensor_like,
    check_type,
    compare,
    exercise,
    fail,
    passed,
    private_generator,
)

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- inputs


def _mixture(g, k, d, spread=3.0, scale=1.0, dtype=F64):
    """Random weights (K,), means (K, D), correlated covs (K, D, D) from generator g."""
    weights = torch.softmax(torch.randn(k, generator=g, dtype=F64), 0)
    means = spread * scale * torch.randn(k, d, generator=g, dtype=F64)
    a = torch.randn(k, d, d, generator=g, dtype=F64)
    covs = scale**2 * (a @ a.mT / d + 0.3 * torch.eye(d, dtype=F64))
    return weights.to(dtype), means.to(dtype), covs.to(dtype)


def _points(g, n, means, scale=1.0, shift=0.0):
    """n points scattered around the means: (n, D)."""
    centre = means[torch.randint(len(means), (n,), generator=g)]
    return centre + shift + scale * 2 * torch.randn(n, means.shape[1], generator=g, dtype=F64).to(
        means.dtype)


def _mixture_cases(name: str) -> list[Case]:
    """Inputs (x, weights, means, covs): typical, K=1, N=1, far points, tiny and huge scales."""
    g = private_generator(name)
    cases = []
    for n, k, d, scale, offset in [(6, 3, 2, 1.0, 0.0), (5, 1, 3, 1.0, 0.0), (1, 4, 2, 1.0, 0.0),
                                   (7, 2, 1, 1.0, 0.0), (6, 3, 2, 1e-2, 0.0), (5, 3, 3, 1e2, 1e3)]:
        weights, means, covs = _mixture(g, k, d, scale=scale)
        means = means + offset
        cases.append(Case((_points(g, n, means, scale), weights, means, covs)))
    weights, means, covs = _mixture(g, 3, 2)
    far = _points(g, 4, means, shift=60.0)  # every density underflows to exactly 0
    cases.append(Case((far, weights, means, covs)))
    weights, means, covs = _mixture(g, 2, 3, dtype=torch.float32)
    cases.append(Case((_points(g, 5, means), weights, means, covs)))
    return cases


_MIXTURE_ARGS = ("x", "weights", "means", "covs")


# --------------------------------------------------------------------------- helpers for mistakes


def _log_normal(x, means, covs):
    return gmm.component_log_densities(x, means, covs)  # (N, K)


def _quadratic(x, mean, cov, matrix):
    diff = x - mean
    return (diff @ matrix * diff).sum(1)


def _half_log_det(cov):
    return torch.linalg.cholesky(cov).diagonal().log().sum()


# --------------------------------------------------------------------------- notebook 01


def _density_parts(x, mean, cov):
    d = x.shape[1]
    maha = _quadratic(x, mean, cov, torch.linalg.inv(cov))
    return d, maha, _half_log_det(cov)


_DENSITY_MISTAKES = [
    Mistake("the quadratic term needs its factor ½: -½ (x-μ)ᵀ Σ⁻¹ (x-μ).",
            lambda x, m, c: (lambda d, q, h: -0.5 * d * LOG_2PI - h - q)(*_density_parts(x, m, c))),
    Mistake("the log-determinant term is missing: log N includes -½ log|Σ|.",
            lambda x, m, c: (lambda d, q, h: -0.5 * (d * LOG_2PI + q))(*_density_parts(x, m, c))),
    Mistake("the log-determinant needs its factor ½: the term is -½ log|Σ|.",
            lambda x, m, c: (lambda d, q, h: -0.5 * (d * LOG_2PI + q) - 2 * h)(
                *_density_parts(x, m, c))),
    Mistake("log|Σ| from a Cholesky factor is 2 Σ_i log L_ii (Σ = L Lᵀ has two factors).",
            lambda x, m, c: (lambda d, q, h: -0.5 * (d * LOG_2PI + q) - 0.5 * h)(
                *_density_parts(x, m, c))),
    Mistake("the normalising constant is off: it is -(D/2) log 2π, one log 2π per dimension.",
            lambda x, m, c: (lambda d, q, h: -0.5 * (LOG_2PI + q) - h)(*_density_parts(x, m, c))),
    Mistake("the constant -(D/2) log 2π is missing.",
            lambda x, m, c: (lambda d, q, h: -0.5 * q - h)(*_density_parts(x, m, c))),
    Mistake("the quadratic form uses Σ where it needs the inverse Σ⁻¹ (solve with L instead).",
            lambda x, m, c: -0.5 * (x.shape[1] * LOG_2PI + _quadratic(x, m, c, c))
            - _half_log_det(c)),
    Mistake("the mean is missing: the quadratic form is in (x - μ), not x.",
            lambda x, m, c: gmm.gaussian_log_density(x, torch.zeros_like(m), c)),
    Mistake("with Σ = L Lᵀ the whitened vector is L⁻¹(x - μ): solve with L (lower), not Lᵀ.",
            lambda x, m, c: -0.5 * (x.shape[1] * LOG_2PI + _quadratic(
                x, m, c, torch.linalg.inv(torch.linalg.cholesky(c).mT @ torch.linalg.cholesky(c))))
            - _half_log_det(c)),
    Mistake("only the diagonal of Σ was used; the off-diagonal terms (correlations) matter.",
            lambda x, m, c: gmm.gaussian_log_density(x, m, torch.diag_embed(c.diagonal()))),
    Mistake("the log-determinant enters with a minus sign: log N has -½ log|Σ|.",
            lambda x, m, c: (lambda d, q, h: -0.5 * (d * LOG_2PI + q) + h)(
                *_density_parts(x, m, c))),
    Mistake("D is the dimension of a point, x.shape[1]; x.shape[0] is the number of points N.",
            lambda x, m, c: (lambda d, q, h: -0.5 * (x.shape[0] * LOG_2PI + q) - h)(
                *_density_parts(x, m, c))),
    Mistake("this is the density itself; return its logarithm.",
            lambda x, m, c: gmm.gaussian_log_density(x, m, c).exp()),
    Mistake("a sign is flipped: the quadratic term lowers the log-density.",
            lambda x, m, c: (lambda d, q, h: -0.5 * (d * LOG_2PI - q) - h)(
                *_density_parts(x, m, c))),
]


def _density_cases() -> list[Case]:
    g = private_generator("gaussian_log_density")
    cases = []
    for n, d, scale, offset in [(5, 2, 1.0, 0.0), (1, 3, 1.0, 0.0), (4, 1, 1.0, 0.0),
                                (6, 4, 1.0, 0.0), (5, 3, 1e-2, 0.0), (4, 2, 1e2, 1e3)]:
        _, means, covs = _mixture(g, 1, d, scale=scale)
        mean = means[0] + offset
        cases.append(Case((_points(g, n, mean[None], scale), mean, covs[0])))
    _, means, covs = _mixture(g, 1, 2)
    cases.append(Case((_points(g, 3, means, shift=50.0), means[0], covs[0])))  # far: exp = 0
    _, means, covs = _mixture(g, 1, 3, dtype=torch.float32)
    cases.append(Case((_points(g, 4, means), means[0], covs[0])))
    return cases


@exercise("01_latent_variable_models", hints=(
    "Write log N(x | μ, Σ) = -½ [D log 2π + log det Σ + (x - μ)ᵀ Σ⁻¹ (x - μ)] and compute each of "
    "the three terms for all rows at once.",
    "A Cholesky factor Σ = L Lᵀ gives both: log det Σ = 2 Σ log diag(L), and the quadratic form is"
    " ||L⁻¹(x - μ)||² (torch.linalg.solve_triangular), never an explicit inverse.",
))
def gaussian_log_density(student_fn):
    """Check log N(x | mean, cov) (N,) against the reference on correlated, tiny, huge inputs."""
    compare("gaussian_log_density", student_fn, gmm.gaussian_log_density, _density_cases(),
            arg_names=("x", "mean", "cov"), mistakes=_DENSITY_MISTAKES, rtol=1e-4, atol=1e-5,
            gradients="connected")


def _sample_args(g, k, d, dtype=F64):
    weights = torch.tensor([0.6, 0.3, 0.1][:k], dtype=F64)
    weights = weights / weights.sum()
    means = 4.0 * torch.randn(k, d, generator=g, dtype=F64)
    a = torch.randn(k, d, d, generator=g, dtype=F64)
    covs = a @ a.mT + 0.5 * torch.eye(d, dtype=F64)  # strongly correlated, not diagonal
    return weights.to(dtype), means.to(dtype), covs.to(dtype)


def _check_sample_output(name, out, n, weights, means, case):
    check_type(name, out, (None, None), "your output")
    x, z = out
    expected_x = torch.empty(n, means.shape[1], dtype=means.dtype, device=means.device)
    check_type(name, x, expected_x, "`x`")
    check_tensor_like(name, x, expected_x, "`x`")
    check_type(name, z, expected_x, "`z`")
    if z.shape != (n,):
        fail(name, f"`z` has shape {tuple(z.shape)}, expected ({n},): one component per sample.")
    if z.dtype != torch.int64:
        fail(name, f"`z` has dtype {z.dtype}; component indices should be integers "
                   "(torch.int64, what torch.multinomial returns).")
    if z.numel() and (z.min() < 0 or z.max() >= len(weights)):
        fail(name, f"`z` holds values outside 0..K-1 = 0..{len(weights) - 1}.")
    if not torch.isfinite(x).all():
        where = case.describe(("num_samples",) + _MIXTURE_ARGS[1:])
        fail(name, f"`x` contains NaN or inf on input ({where}).")
    return x, z


def _cov_hint(sample_cov, cov):
    """Name the likely mistake behind a wrong sample covariance (or '')."""
    factor = torch.linalg.cholesky(cov)
    candidates = {
        "the noise was scaled by Σ itself; scale it by a matrix square root L with L Lᵀ = Σ "
        "(the Cholesky factor).": cov @ cov,
        "the Cholesky factor is applied from the wrong side: with ε as a row vector the "
        "samples need covariance L Lᵀ, not Lᵀ L.": factor.mT @ factor,
        "the correlations are missing: taking square roots of the diagonal (or of each entry) "
        "of Σ is not a matrix square root.": torch.diag_embed(cov.diagonal()),
        "the spread is off: the samples need covariance Σ (did you add the variance instead of "
        "multiplying the noise by a square root of Σ?)": torch.eye(len(cov), dtype=cov.dtype),
    }
    sqrt_entries = cov.abs().sqrt() * cov.sign()
    candidates["taking square roots entry by entry is not a matrix square root; use the Cholesky "
               "factor L (Σ = L Lᵀ)."] = sqrt_entries @ sqrt_entries.mT

    def distance(a, b):
        return ((a - b).norm() / b.norm()).item()

    best = min(candidates, key=lambda h: distance(sample_cov, candidates[h]))
    return best if distance(sample_cov, candidates[best]) < 0.1 else ""


@exercise("01_latent_variable_models", hints=(
    "Ancestral sampling: first draw every component index z from Cat(weights), then draw each x "
    "from the Gaussian of its own component.",
    "torch.multinomial(weights, n, replacement=True) draws the z; for x, take standard normal ε "
    "and map it with the Cholesky factor of covs[z]: μ_z + L_z ε.",
))
def gmm_sample(student_fn):
    """Check shapes, dtypes, reproducibility, and the statistics of many samples."""
    name = "gmm_sample"
    arg_names = ("num_samples",) + _MIXTURE_ARGS[1:]
    g = private_generator(name)
    for n, k, d, dtype in [(5, 3, 3, torch.float32), (1, 2, 2, F64), (4, 1, 1, F64)]:
        params = _sample_args(g, k, d, dtype)
        case = Case((n, *params))
        _check_sample_output(name, call_student(name, student_fn, case, arg_names), n,
                             params[0], params[1], case)
    n = 20_000
    weights, means, covs = _sample_args(g, 3, 2)
    case = Case((n, weights, means, covs))
    x, z = _check_sample_output(name, call_student(name, student_fn, case, arg_names, seed=0), n,
                                weights, means, case)
    again = call_student(name, student_fn, case, arg_names, seed=0)
    if not (torch.equal(again[0], x) and torch.equal(again[1], z)):
        fail(name, "two calls after the same torch.manual_seed gave different samples. Draw all "
                   "randomness with torch (torch.multinomial, torch.randn), not NumPy or random.")
    other = call_student(name, student_fn, case, arg_names, seed=1)
    if torch.equal(other[0], x):
        fail(name, "your samples are the same for every random seed; they must be random "
                   "(draw z and the noise with torch's random functions).")
    if torch.equal(other[1], z) or bool((z[1:] >= z[:-1]).all()):
        fail(name, "your z is not random: it is the same for every seed, or it comes in order "
                   "(all the 0s, then the 1s, ...). Each z_n must be drawn from Cat(π) on its "
                   "own, independently of the others.")
    _check_sample_statistics(name, x, z, weights, means, covs)
    passed(name, 6, "checks pass (shapes, reproducibility, frequencies, means, covariances)")


def _check_sample_statistics(name, x, z, weights, means, covs):
    n = len(z)
    freq = torch.bincount(z, minlength=len(weights)).to(F64) / n
    if ((freq - weights).abs() > 5 * (weights * (1 - weights) / n).sqrt() + 1e-3).any():
        uniform = ((freq - 1 / len(weights)).abs() < 0.02).all()
        fail(name, f"over {n} samples the components appear with frequencies "
                   f"{[round(f, 3) for f in freq.tolist()]}, but the weights are "
                   f"{[round(w, 3) for w in weights.tolist()]}.\n"
                   + ("Hint: z looks uniform; draw it from Categorical(π), not uniformly."
                      if uniform else "Hint: draw z from Categorical(π), e.g. torch.multinomial."))
    for k in range(len(weights)):
        xk = x[z == k].to(F64)
        std_err = (covs[k].diagonal() / len(xk)).sqrt()
        if ((xk.mean(0) - means[k]).abs() > 6 * std_err + 1e-6).any():
            fail(name, f"samples with z = {k} average {[round(v, 2) for v in xk.mean(0).tolist()]}"
                       f" but μ_{k} = {[round(v, 2) for v in means[k].tolist()]}.\n"
                       "Hint: each x_n must be drawn from the component z_n you return with it.")
        sample_cov = torch.cov(xk.T).reshape(covs[k].shape)
        factor = torch.linalg.cholesky(covs[k])
        white = torch.linalg.solve_triangular(factor, torch.linalg.solve_triangular(
            factor, sample_cov, upper=False).mT, upper=False)  # L⁻¹ S L⁻ᵀ ≈ I
        if (white - torch.eye(len(white), dtype=F64)).abs().max() > 0.15:
            hint = _cov_hint(sample_cov, covs[k])
            fail(name, f"the samples of component {k} have covariance "
                       f"{[[round(v, 2) for v in row] for row in sample_cov.tolist()]}, "
                       f"expected {[[round(v, 2) for v in row] for row in covs[k].tolist()]}."
                       + (f"\nHint: {hint}" if hint else ""))


def _ll_naive(x, w, m, c):
    return (w * _log_normal(x, m, c).exp()).sum(1).log().sum()


_LL_MISTAKES = [
    Mistake("return the sum over data points (the log-likelihood of the data set), not the mean.",
            lambda x, w, m, c: gmm.gmm_log_likelihood(x, w, m, c) / x.shape[0]),
    Mistake("the mixture weights π_k are missing: p(x) = Σ_k π_k N(x | μ_k, Σ_k).",
            lambda x, w, m, c: torch.logsumexp(_log_normal(x, m, c), 1).sum()),
    Mistake("inside the log-sum-exp add log π_k, not π_k.",
            lambda x, w, m, c: torch.logsumexp(_log_normal(x, m, c) + w, 1).sum()),
    Mistake("the log-sum-exp runs over the wrong axis: sum over components k inside the log "
            "and over data points n outside it.",
            lambda x, w, m, c: torch.logsumexp(w.log() + _log_normal(x, m, c), 0).sum()),
    Mistake("Σ_k π_k log N is Jensen's lower bound, not log Σ_k π_k N: the sum over k goes "
            "inside the log.",
            lambda x, w, m, c: (w * _log_normal(x, m, c)).sum()),
    Mistake("a max over components keeps only the best one; sum over all of them with "
            "logsumexp.",
            lambda x, w, m, c: (w.log() + _log_normal(x, m, c)).amax(1).sum()),
    Mistake("the densities underflow to 0 for points far from every component (log 0 = -inf): "
            "stay in log space and combine the components with torch.logsumexp.", _ll_naive),
]


@exercise("01_latent_variable_models", hints=(
    "For each point, the log of a sum over components of π_k N(x | μ_k, Σ_k); then add the points "
    "up. Work with logs throughout.",
    "Build an (N, K) table of log π_k + log N(x_n | μ_k, Σ_k) and reduce over k with "
    "torch.logsumexp, not with exp-then-log.",
))
def gmm_log_likelihood(student_fn):
    """Check Σ_n log Σ_k π_k N(x_n | μ_k, Σ_k) (a scalar sum) on typical and far-away points."""
    compare("gmm_log_likelihood", student_fn, gmm.gmm_log_likelihood,
            _mixture_cases("gmm_log_likelihood"), arg_names=_MIXTURE_ARGS,
            mistakes=_LL_MISTAKES, rtol=1e-4, atol=1e-5,
            gradients="connected")


# --------------------------------------------------------------------------- notebook 02


def _joint(x, w, m, c):
    return w.log() + _log_normal(x, m, c)


_E_STEP_MISTAKES = [
    Mistake("normalised over the wrong axis: each row (one data point) must sum to 1 over the "
            "K components.", lambda x, w, m, c: torch.softmax(_joint(x, w, m, c), 0)),
    Mistake("not normalised: divide π_k N(x_n | μ_k, Σ_k) by p(x_n), the sum over components.",
            lambda x, w, m, c: _joint(x, w, m, c).exp()),
    Mistake("these are log-responsibilities; return the probabilities r_nk themselves.",
            lambda x, w, m, c: torch.log_softmax(_joint(x, w, m, c), 1)),
    Mistake("the mixture weights π_k are missing: r_nk ∝ π_k N(x_n | μ_k, Σ_k).",
            lambda x, w, m, c: torch.softmax(_log_normal(x, m, c), 1)),
    Mistake("add log π_k to the log-density, not π_k.",
            lambda x, w, m, c: torch.softmax(_log_normal(x, m, c) + w, 1)),
    Mistake("far from every component the densities underflow to 0 and 0/0 gives NaN: "
            "normalise in log space (subtract the log-sum-exp, or use a softmax).",
            lambda x, w, m, c: (lambda p: p / p.sum(1, keepdim=True))(_joint(x, w, m, c).exp())),
    Mistake("these are hard assignments; EM's E-step keeps the full posterior probabilities.",
            lambda x, w, m, c: torch.nn.functional.one_hot(
                _joint(x, w, m, c).argmax(1), len(w)).to(x.dtype)),
]


@exercise("02_em", hints=(
    "r_nk is p(z_n = k | x_n): the joint π_k N(x_n | μ_k, Σ_k), normalised over k for each point.",
    "Normalise in log space: from the (N, K) log-joint subtract its logsumexp over k "
    "(keepdim=True), then exponentiate. Each row must sum to 1.",
))
def e_step(student_fn):
    """Check the responsibilities r (N, K) = p(z=k | x) on typical and far-away points."""
    compare("e_step", student_fn, gmm.e_step, _mixture_cases("e_step"), arg_names=_MIXTURE_ARGS,
            mistakes=_E_STEP_MISTAKES, rtol=1e-4, atol=1e-6, gradients=False)


def _resp_cases(name: str) -> list[Case]:
    """Inputs (x, resp): soft and hard responsibilities, K=1, D=1, large offsets."""
    g = private_generator(name)
    cases = []
    for n, k, d, offset, hard in [(8, 3, 2, 0.0, False), (6, 1, 3, 0.0, False),
                                  (7, 2, 1, 0.0, False), (9, 3, 2, 0.0, True),
                                  (8, 2, 3, 1e3, False)]:
        x = offset + torch.randn(n, d, generator=g, dtype=F64)
        if hard:
            resp = torch.nn.functional.one_hot(torch.arange(n) % k, k).to(F64)
        else:
            resp = torch.softmax(2 * torch.randn(n, k, generator=g, dtype=F64), 1)
        cases.append(Case((x, resp)))
    x = torch.randn(6, 2, generator=g)
    cases.append(Case((x, torch.softmax(torch.randn(6, 2, generator=g), 1))))  # float32
    return cases


def _m_parts(x, r):
    nk = r.sum(0)
    means = r.T @ x / nk.unsqueeze(1)
    return nk, means


def _weighted_cov(x, r, centres, divisor):
    diff = x.unsqueeze(0) - centres.unsqueeze(1)  # (K, N, D)
    return (diff * r.T.unsqueeze(-1)).mT @ diff / divisor.view(-1, 1, 1)


def _m_variant(weights=None, means=None, covs=None):
    """A wrong M-step: one output replaced; covariances use the (possibly wrong) means."""
    def wrong(x, r):
        nk, mu = _m_parts(x, r)
        w = nk / x.shape[0] if weights is None else weights(x, r, nk, mu)
        mu = mu if means is None else means(x, r, nk, mu)
        return w, mu, _weighted_cov(x, r, mu, nk) if covs is None else covs(x, r, nk, mu)
    return wrong


_M_STEP_MISTAKES = [
    Mistake("the weights must be N_k / N: divide N_k = Σ_n r_nk by the number of points.",
            _m_variant(weights=lambda x, r, nk, mu: nk)),
    Mistake("the weights are not the average responsibility N_k / N.",
            _m_variant(weights=lambda x, r, nk, mu: torch.full_like(nk, 1 / len(nk)))),
    Mistake("the means must be divided by N_k = Σ_n r_nk.",
            _m_variant(means=lambda x, r, nk, mu: r.T @ x)),
    Mistake("divide the weighted sum of points by N_k = Σ_n r_nk, not by N.",
            _m_variant(means=lambda x, r, nk, mu: r.T @ x / x.shape[0])),
    Mistake("the means must weight each point by r_nk (a weighted average).",
            _m_variant(means=lambda x, r, nk, mu: x.mean(0).expand_as(mu))),
    Mistake("the covariances must be centred on the new component means μ_k.",
            _m_variant(covs=lambda x, r, nk, mu: _weighted_cov(x, r, x.mean(0).expand_as(mu), nk))),
    Mistake("the covariances must be centred on the new component means μ_k (subtract them).",
            _m_variant(covs=lambda x, r, nk, mu: _weighted_cov(x, r, torch.zeros_like(mu), nk))),
    Mistake("divide each covariance sum by N_k = Σ_n r_nk, not by N.",
            _m_variant(covs=lambda x, r, nk, mu: _weighted_cov(
                x, r, mu, torch.full_like(nk, x.shape[0])))),
    Mistake("the maximum-likelihood covariance divides by N_k, not N_k - 1.",
            _m_variant(covs=lambda x, r, nk, mu: _weighted_cov(x, r, mu, nk - 1))),
    Mistake("torch.cov divides by an unbiased normaliser by default (correction=1); the "
            "maximum-likelihood covariance needs correction=0.",
            _m_variant(covs=lambda x, r, nk, mu: torch.stack([
                torch.cov(x.T, aweights=r[:, k]).reshape(x.shape[1], x.shape[1])
                for k in range(r.shape[1])]))),
    Mistake("each point's outer product must be weighted by its responsibility r_nk.",
            _m_variant(covs=lambda x, r, nk, mu: _weighted_cov(x, torch.ones_like(r), mu, nk))),
    Mistake("the covariances are missing their weights' normalisation: divide by N_k.",
            _m_variant(covs=lambda x, r, nk, mu: _weighted_cov(x, r, mu, torch.ones_like(nk)))),
]


@exercise("02_em", hints=(
    "With N_k = Σ_n r_nk: the weight is N_k / N, the mean is the r-weighted average of the points,"
    " the covariance the r-weighted average of the outer products around the NEW mean.",
    "resp.T @ x gives the weighted sums (K, D); for the covariances, centre x on each new mean (a "
    "(K, N, D) tensor) and weigh the outer products by r_nk before dividing by N_k.",
))
def m_step(student_fn):
    """Check (weights (K,), means (K, D), covs (K, D, D)) from x and soft or hard resp."""
    compare("m_step", student_fn, gmm.m_step, _resp_cases("m_step"), arg_names=("x", "resp"),
            output_names=("weights", "means", "covs"), mistakes=_M_STEP_MISTAKES,
            rtol=1e-4, atol=1e-6, gradients=False)


def _elbo_cases() -> list[Case]:
    """Inputs (x, resp, weights, means, covs) with q random, the posterior, hard, K=1, N=1."""
    g = private_generator("gmm_elbo")
    cases = []
    for n, k, d, kind in [(8, 3, 2, "random"), (6, 3, 2, "posterior"), (7, 3, 2, "hard"),
                          (5, 1, 2, "random"), (1, 2, 3, "random"), (6, 2, 1, "random")]:
        weights, means, covs = _mixture(g, k, d)
        x = _points(g, n, means)
        if kind == "posterior":
            resp = gmm.e_step(x, weights, means, covs)
        elif kind == "hard":
            resp = torch.nn.functional.one_hot(torch.arange(n) % k, k).to(F64)
        else:
            resp = torch.softmax(2 * torch.randn(n, k, generator=g, dtype=F64), 1)
        cases.append(Case((x, resp, weights, means, covs)))
    return cases


def _expected_joint(x, r, w, m, c):
    return (r * _joint(x, w, m, c)).sum()


def _entropy(r):
    return -torch.special.xlogy(r, r).sum()


_ELBO_MISTAKES = [
    Mistake("the entropy term is missing: ELBO = E_q[log p(x, z)] - E_q[log q(z)].",
            _expected_joint),
    Mistake("the entropy enters with the wrong sign: it is -Σ r log r ≥ 0, added.",
            lambda x, r, w, m, c: _expected_joint(x, r, w, m, c) - _entropy(r)),
    Mistake("the mixture weights are missing: log p(x, z=k) = log π_k + log N(x | μ_k, Σ_k).",
            lambda x, r, w, m, c: (r * _log_normal(x, m, c)).sum() + _entropy(r)),
    Mistake("return the sum over data points, not the mean.",
            lambda x, r, w, m, c: gmm.gmm_elbo(x, r, w, m, c) / x.shape[0]),
    Mistake("entries with r_nk = 0 must contribute 0 (0 log 0 = 0), not NaN.",
            lambda x, r, w, m, c: _expected_joint(x, r, w, m, c) - (r * r.log()).sum()),
    Mistake("this is the log-likelihood, which ignores resp; the ELBO depends on q and equals "
            "log p(x) only when q is the posterior.",
            lambda x, r, w, m, c: gmm.gmm_log_likelihood(x, w, m, c)),
]


@exercise("02_em", hints=(
    "The ELBO is E_r[log p(x, z)] + H(r): a sum over points and components of r_nk times (log π_k "
    "+ log N(x_n | μ_k, Σ_k) - log r_nk).",
    "A responsibility of exactly 0 must contribute 0, not 0 · (-inf) = nan: torch.special.xlogy(r,"
    " r) computes r log r with that convention.",
))
def gmm_elbo(student_fn):
    """Check the ELBO (a scalar sum) for random, posterior and hard responsibilities."""
    compare("gmm_elbo", student_fn, gmm.gmm_elbo, _elbo_cases(),
            arg_names=("x", "resp") + _MIXTURE_ARGS[1:], mistakes=_ELBO_MISTAKES,
            rtol=1e-4, atol=1e-5, gradients=False)
