"""Checks for notebook 03 (variational inference).

``kl_mvn``, ``mean_field_update``, ``cavi_step``, ``cavi_elbo`` and ``log_mean_exp`` are
compared with the reference in ``course_utils.vi`` / ``course_utils.numerics`` on random and
edge inputs (large magnitudes, tiny variances, one data point, one component, float32), with a
bank of known mistakes that name what went wrong.
"""

from __future__ import annotations

import math

import torch

from .. import numerics, vi
from .core import Case, Mistake, compare, exercise, private_generator, randn

NOTEBOOK = "03_variational_inference"
_LOG_2PI = math.log(2 * math.pi)


def _spd(g: torch.Generator, *shape: int, scale: float = 1.0, dtype=torch.float64):
    """Random well-conditioned SPD matrices (*shape[:-1], d, d), times ``scale``."""
    d = shape[-1]
    a = torch.randn(*shape, d, generator=g, dtype=torch.float64)
    cov = a @ a.mT / d + 0.5 * torch.eye(d, dtype=torch.float64)
    return (scale * cov).to(dtype)


# --------------------------------------------------------------------------- kl_mvn


def _kl_parts(mu1, cov1, mu2, cov2):
    """The four terms of the closed form, computed naively: trace, quadratic, D, log-det ratio."""
    inv2 = torch.linalg.inv(cov2)
    diff = (mu2 - mu1).unsqueeze(-1)
    trace = (inv2 @ cov1).diagonal(dim1=-2, dim2=-1).sum(-1)
    quad = (diff.mT @ inv2 @ diff)[..., 0, 0]
    log_det = torch.logdet(cov2) - torch.logdet(cov1)
    return trace, quad, mu1.shape[-1], log_det


def _kl_from(trace=1.0, quad=1.0, d=1.0, log_det=1.0, half=0.5, swap=False, log_det_factor=1.0):
    """A KL variant: each flag scales (or drops, with 0) one term of the closed form."""

    def kl(mu1, cov1, mu2, cov2):
        if swap:
            mu1, cov1, mu2, cov2 = mu2, cov2, mu1, cov1
        t, q, dim, ld = _kl_parts(mu1, cov1, mu2, cov2)
        return half * (trace * t + quad * q - d * dim + log_det * log_det_factor * ld)

    return kl


def _kl_quad_with_cov1(mu1, cov1, mu2, cov2):
    t, _, d, ld = _kl_parts(mu1, cov1, mu2, cov2)
    _, q, _, _ = _kl_parts(mu1, cov2, mu2, cov1)
    return 0.5 * (t + q - d + ld)


def _kl_trace_inverted(mu1, cov1, mu2, cov2):
    _, q, d, ld = _kl_parts(mu1, cov1, mu2, cov2)
    t, _, _, _ = _kl_parts(mu2, cov2, mu1, cov1)
    return 0.5 * (t + q - d + ld)


def _kl_diagonal_only(mu1, cov1, mu2, cov2):
    diag = lambda c: torch.diag_embed(c.diagonal(dim1=-2, dim2=-1))
    return _kl_from()(mu1, diag(cov1), mu2, diag(cov2))


def _kl_d_from_batch(mu1, cov1, mu2, cov2):
    t, q, _, ld = _kl_parts(mu1, cov1, mu2, cov2)
    return 0.5 * (t + q - mu1.shape[0] + ld)


_KL_MISTAKES = [
    Mistake("KL is not symmetric: your result equals KL(N(mu2, cov2) || N(mu1, cov1)). The "
            "expectation is under the first Gaussian; the second one's covariance is inverted.",
            _kl_from(swap=True)),
    Mistake("the trace term tr(Σ₂⁻¹ Σ₁) is missing.", _kl_from(trace=0.0)),
    Mistake("the log-determinant term is missing.", _kl_from(log_det=0.0)),
    Mistake("the log-determinant ratio is upside down: check which determinant goes on top.",
            _kl_from(log_det=-1.0)),
    Mistake("log det Σ from a Cholesky factor L is 2 Σᵢ log Lᵢᵢ (det Σ = det(L)²): "
            "a factor 2 is missing.", _kl_from(log_det_factor=0.5)),
    Mistake("the quadratic term (μ₂ − μ₁)ᵀ Σ⁻¹ (μ₂ − μ₁) is missing.", _kl_from(quad=0.0)),
    Mistake("the closed form has a factor 1/2 in front of the bracket.", _kl_from(half=1.0)),
    Mistake("the constant −D (the dimension) is missing from the bracket.", _kl_from(d=0.0)),
    Mistake("the quadratic term uses the wrong covariance: measure the mean difference with "
            "the second Gaussian's covariance, as in the trace.", _kl_quad_with_cov1),
    Mistake("the trace term is inverted: it is the second covariance that is inverted.",
            _kl_trace_inverted),
    Mistake("your result only uses the diagonals of the covariances; with correlations you "
            "need the full matrices (solve with a Cholesky factor, not 1/diagonal).",
            _kl_diagonal_only),
    Mistake("D is the size of the last dimension (the event), not of the first (the batch).",
            _kl_d_from_batch),
]


def _kl_cases() -> list[Case]:
    g = private_generator("kl_mvn")

    def pair(*batch, d, mu_scale=1.0, cov_scale=1.0, dtype=torch.float64, same=False):
        mu1 = randn(g, *batch, d, scale=mu_scale, dtype=dtype)
        cov1 = _spd(g, *batch, d, scale=cov_scale, dtype=dtype)
        if same:
            return Case((mu1, cov1, mu1.clone(), cov1.clone()))
        mu2 = randn(g, *batch, d, scale=mu_scale, dtype=dtype)
        return Case((mu1, cov1, mu2, _spd(g, *batch, d, scale=cov_scale, dtype=dtype)))

    return [
        pair(d=2),
        pair(4, d=3),
        pair(5, d=1),
        pair(2, d=3, same=True),
        pair(3, d=2, mu_scale=100.0),
        pair(3, d=2, mu_scale=0.01, cov_scale=1e-4),
        pair(1, d=4),
        pair(3, d=2, dtype=torch.float32),
    ]


@exercise(NOTEBOOK, hints=(
    "KL(N₁ || N₂) = ½ [tr(Σ₂⁻¹Σ₁) + (μ₂ - μ₁)ᵀ Σ₂⁻¹ (μ₂ - μ₁) - D + log det Σ₂ - log det Σ₁]; "
    "compute each term with batch dimensions in front.",
    "With Cholesky factors L₁, L₂: tr(Σ₂⁻¹Σ₁) = ||L₂⁻¹ L₁||²_F and the quadratic term is ||L₂⁻¹(μ₂"
    " - μ₁)||², both via solve_triangular; log det Σ = 2 Σ log diag(L).",
))
def kl_mvn(student_fn):
    """Check KL(N(mu1, cov1) || N(mu2, cov2)) on batched, identical, huge and tiny Gaussians."""
    compare("kl_mvn", student_fn, vi.kl_mvn, _kl_cases(),
            arg_names=("mu1", "cov1", "mu2", "cov2"), mistakes=_KL_MISTAKES, rtol=1e-4,
            gradients="connected")


# --------------------------------------------------------------------------- mean_field_update


def _mf(mean_fn, var_fn, swap_outputs=False):
    """A mean-field variant built from a mean formula and a variance formula (j = 1 - i)."""

    def update(m_other, mu, lam, i):
        j = 1 - i
        mean, var = mean_fn(m_other, mu, lam, i, j), var_fn(lam, i, j)
        return (var, mean) if swap_outputs else (mean, var)

    return update


def _mf_mean(m, mu, lam, i, j):
    return mu[i] - lam[i, j] / lam[i, i] * (m - mu[j])


def _mf_var(lam, i, j):
    return 1 / lam[i, i]


def _mf_as_covariance(m_other, mu, cov, i):
    """Treats ``precision`` as if it were the covariance: the conditional of N(mu, precision)."""
    j = 1 - i
    return mu[i] + cov[i, j] / cov[j, j] * (m_other - mu[j]), cov[i, i] - cov[i, j] ** 2 / cov[j, j]


_MF_MISTAKES = [
    Mistake("the variance of q_i is the inverse of a precision entry, not the entry itself.",
            _mf(_mf_mean, lambda lam, i, j: lam[i, i])),
    Mistake("that variance is the true marginal variance of p (a diagonal entry of Λ⁻¹). "
            "Mean field gives a different one: look at the coefficient of z_i² in log p.",
            _mf(_mf_mean, lambda lam, i, j: torch.linalg.inv(lam)[i, i])),
    Mistake("check the sign of the correction term to the mean.",
            _mf(lambda m, mu, lam, i, j: mu[i] + lam[i, j] / lam[i, i] * (m - mu[j]), _mf_var)),
    Mistake("the correction uses how far the other coordinate's mean is from its own centre, "
            "(m_j − μ_j), not m_j alone.",
            _mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] / lam[i, i] * m, _mf_var)),
    Mistake("the correction to the mean must be divided by a diagonal precision entry.",
            _mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] * (m - mu[j]), _mf_var)),
    Mistake("divide by the precision of the coordinate you update, Λ_ii, not of the other one.",
            _mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] / lam[j, j] * (m - mu[j]),
                lambda lam, i, j: 1 / lam[j, j])),
    Mistake("divide by the precision of the coordinate you update, Λ_ii, not of the other one.",
            _mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] / lam[j, j] * (m - mu[j]), _mf_var)),
    Mistake("you updated the other coordinate: i (0 or 1) is the factor q_i you update, and "
            "m_other is the mean of the other coordinate j = 1 − i.",
            _mf(lambda m, mu, lam, i, j: mu[j] - lam[j, i] / lam[j, j] * (m - mu[i]),
                lambda lam, i, j: 1 / lam[j, j])),
    Mistake("the two outputs are swapped: return (mean_i, var_i).",
            _mf(_mf_mean, _mf_var, swap_outputs=True)),
    Mistake("`precision` is Λ, the inverse of the covariance; you used it as the covariance.",
            _mf_as_covariance),
]


def _mf_cases() -> list[Case]:
    g = private_generator("mean_field_update")

    def case(rho, i, scales=(1.0, 1.0), mu=(0.5, -1.0), m_other=1.5, dtype=torch.float64):
        s = torch.tensor(scales, dtype=torch.float64)
        cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64) * s[:, None] * s
        precision = torch.linalg.inv(cov).to(dtype)
        mu_t = torch.tensor(mu, dtype=dtype)
        return Case((torch.tensor(m_other, dtype=dtype), mu_t, precision, i))

    random_mu = tuple(randn(g, 2, scale=2.0).tolist())
    return [
        case(0.9, 0, scales=(1.0, 2.0)),
        case(-0.6, 1, scales=(0.5, 1.5), mu=random_mu, m_other=-0.7),
        case(0.3, 0, scales=(3.0, 0.4), mu=(100.0, -250.0), m_other=-180.0),
        case(0.95, 1, scales=(0.01, 0.02), mu=(0.001, 0.002), m_other=0.01),
        case(0.5, 1, mu=(1.0, 2.0), m_other=1.0),  # m_other equals mu_j: the mean stays mu_i
        case(-0.8, 0, scales=(2.0, 1.0), m_other=3.0, dtype=torch.float32),
    ]


@exercise(NOTEBOOK, hints=(
    "For a Gaussian target, the optimal factor q_i is Gaussian with variance 1 / Λ_ii: only the "
    "precision's diagonal entry sets it.",
    "Its mean is μ_i shifted by how far the other coordinate's mean is from μ_j, scaled by -Λ_ij /"
    " Λ_ii (Bishop, PRML eq. 10.13).",
))
def mean_field_update(student_fn):
    """Check the optimal factor q_i = N(mean_i, var_i) of a 2-D Gaussian given E[z_j]."""
    compare("mean_field_update", student_fn, vi.mean_field_update, _mf_cases(),
            arg_names=("m_other", "mu", "precision", "i"), output_names=("mean_i", "var_i"),
            mistakes=_MF_MISTAKES, rtol=1e-5, atol=1e-9, gradients=False)


# --------------------------------------------------------------------------- cavi_step


def _step(prior=1.0, prior_in_m=True, var_term=1.0, use_d=True, normalise="rows",
          sign=1.0, prior_as_variance=False, divide_m=True):
    """A CAVI-step variant; each flag reproduces one mistake."""

    def step(x, m, s2, sigma2):
        d = x.shape[1] if use_d else 1
        logits = sign * (x @ m.T) - 0.5 * (m.pow(2).sum(1) + var_term * d * s2)
        if normalise == "rows":
            phi = torch.softmax(logits, dim=1)
        elif normalise == "columns":
            phi = torch.softmax(logits, dim=0)
        elif normalise == "naive":
            phi = logits.exp() / logits.exp().sum(1, keepdim=True)
        else:
            phi = logits.exp()
        prior_term = prior * (sigma2 if prior_as_variance else 1 / sigma2)
        s2_new = 1 / (prior_term + phi.sum(0))
        weight = s2_new if prior_in_m else 1 / phi.sum(0)
        m_new = (weight[:, None] if divide_m else 1.0) * (phi.T @ x)
        return phi, m_new, s2_new

    return step


_STEP_MISTAKES = [
    Mistake("the update forgets the prior: the precision of q(μ_k) is the prior's precision "
            "1/σ² plus the data's, and both m_k and s_k² use it.", _step(prior=0.0)),
    Mistake("the prior adds its precision 1/σ² to the data's, not its variance σ².",
            _step(prior_as_variance=True)),
    Mistake("s_k² includes the prior but your m_k does not: m_k is shrunk towards the prior "
            "mean 0 by the same total precision as s_k².", _step(prior_in_m=False)),
    Mistake("m_k is a precision-weighted average, not a weighted sum: divide by the total "
            "precision.", _step(divide_m=False)),
    Mistake("the assignment update uses E[μ_kᵀμ_k] under q, which includes the variance of "
            "q(μ_k), not only ‖m_k‖².", _step(var_term=0.0)),
    Mistake("in D dimensions E[μ_kᵀμ_k] = ‖m_k‖² plus one variance term per dimension.",
            _step(use_d=False)),
    Mistake("each φ_i is a distribution over the K components: normalise each row (over k), "
            "not each column.", _step(normalise="columns")),
    Mistake("φ_i is a distribution over the K components: normalise each row to sum to 1.",
            _step(normalise="none")),
    Mistake("exp of large logits overflows (nan/inf): normalise in log space, e.g. subtract "
            "each row's maximum or use torch.softmax / logsumexp.", _step(normalise="naive")),
    Mistake("check the sign of E[μ_k]ᵀ x_i in the assignment logits.", _step(sign=-1.0)),
]


def _cavi_inputs(g, n, k, d, x_scale=3.0, x_shift=0.0, s2_scale=1.0, dtype=torch.float64):
    x = randn(g, n, d, scale=x_scale, shift=x_shift, dtype=dtype)
    m = randn(g, k, d, scale=x_scale, shift=x_shift, dtype=dtype)
    s2 = (s2_scale * (0.2 + torch.rand(k, generator=g, dtype=torch.float64))).to(dtype)
    return x, m, s2


def _step_cases() -> list[Case]:
    g = private_generator("cavi_step")
    return [
        Case((*_cavi_inputs(g, 8, 3, 2), 2.0)),
        Case((*_cavi_inputs(g, 10, 2, 1), 1.0)),
        Case((*_cavi_inputs(g, 12, 4, 3), 0.5)),
        Case((*_cavi_inputs(g, 1, 2, 2), 4.0)),
        Case((*_cavi_inputs(g, 9, 3, 2, x_scale=30.0, x_shift=200.0), 1e4)),
        Case((*_cavi_inputs(g, 7, 3, 2, s2_scale=1e-6), 3.0)),
        Case((*_cavi_inputs(g, 6, 1, 2), 2.0)),
        Case((*_cavi_inputs(g, 8, 3, 2, dtype=torch.float32), 2.0)),
    ]


@exercise(NOTEBOOK, hints=(
    "Update in order: the assignments φ from the current means, then the means' variances s² and "
    "means m from the new φ.",
    "log φ_ik = x_iᵀ m_k - ½ (||m_k||² + D s²_k) up to a constant, normalised with a softmax over "
    "k; then s²_k = 1 / (1/σ² + Σ_i φ_ik) and m_k = s²_k Σ_i φ_ik x_i.",
))
def cavi_step(student_fn):
    """Check one CAVI sweep (phi, then m and s2) for the Bayesian mixture of Gaussians."""
    compare("cavi_step", student_fn, vi.cavi_step, _step_cases(),
            arg_names=("x", "m", "s2", "sigma2"), output_names=("phi", "m", "s2"),
            mistakes=_STEP_MISTAKES, rtol=1e-4, atol=1e-6, gradients=False)


# --------------------------------------------------------------------------- cavi_elbo


def _elbo(prior_var=1.0, lik_var=1.0, entropy_c=1.0, entropy_mu=1.0, entropy_mu_d=True,
          log_prior_c=1.0, two_pi=1.0, prior_norm_sigma=False, reduce="sum"):
    """A CAVI-ELBO variant; each flag scales (or drops, with 0) one term or constant."""

    def elbo(x, phi, m, s2, sigma2):
        (n, d), k = x.shape, m.shape[0]
        m_sq = m.pow(2).sum(1)
        log_norm = math.log(math.sqrt(sigma2) if prior_norm_sigma else sigma2)
        prior = -0.5 * d * (two_pi * _LOG_2PI + log_norm) - (m_sq + prior_var * d * s2) / (
            2 * sigma2)
        sq = x.pow(2).sum(1, keepdim=True) - 2 * x @ m.T + m_sq + lik_var * d * s2
        lik = phi * (-0.5 * d * two_pi * _LOG_2PI - 0.5 * sq)
        h_c = -torch.xlogy(phi, phi)
        h_mu = 0.5 * (d if entropy_mu_d else 1) * (1 + two_pi * _LOG_2PI + s2.log())
        per_point = lik.sum(1) + entropy_c * h_c.sum(1) - log_prior_c * math.log(k)
        total = prior.sum() + entropy_mu * h_mu.sum()
        return total / n + per_point.mean() if reduce == "mean" else total + per_point.sum()

    return elbo


def _elbo_nan_entropy(x, phi, m, s2, sigma2):
    """0 * log 0 computed as nan."""
    return _elbo()(x, phi, m, s2, sigma2) + torch.xlogy(phi, phi).sum() - (phi * phi.log()).sum()


_ELBO_MISTAKES = [
    Mistake("the entropy of q(c), −Σ φ log φ, is missing.", _elbo(entropy_c=0.0)),
    Mistake("the q(c) term has the wrong sign: the ELBO adds the entropy −Σ φ log φ.",
            _elbo(entropy_c=-1.0)),
    Mistake("0 · log 0 gave nan: an assignment with φ = 0 contributes 0 (use torch.xlogy, or "
            "clamp φ before the log).", _elbo_nan_entropy),
    Mistake("the entropy of the Gaussian factors q(μ_k) is missing.", _elbo(entropy_mu=0.0)),
    Mistake("each q(μ_k) is a D-dimensional Gaussian with variance s_k² in every direction: "
            "its entropy has one term per dimension.", _elbo(entropy_mu_d=False)),
    Mistake("the prior on the assignments is missing: a uniform Cat(1/K) adds log(1/K) "
            "per point.", _elbo(log_prior_c=0.0)),
    Mistake("E‖x_i − μ_k‖² under q includes the variance of q(μ_k), not only ‖x_i − m_k‖².",
            _elbo(lik_var=0.0)),
    Mistake("E[μ_kᵀμ_k] in the prior term includes the variance of q(μ_k), not only ‖m_k‖².",
            _elbo(prior_var=0.0)),
    Mistake("the ELBO is off by a constant: keep every log 2π of the Gaussian densities so it "
            "is a real lower bound on log p(x).", _elbo(two_pi=0.0)),
    Mistake("the normaliser of the prior N(0, σ² I) is (2πσ²)^(−D/2): use the variance σ², "
            "not σ.", _elbo(prior_norm_sigma=True)),
    Mistake("the ELBO sums over the data points; you averaged.", _elbo(reduce="mean")),
]


def _elbo_inputs(g, n, k, d, one_hot=False, **kwargs):
    x, m, s2 = _cavi_inputs(g, n, k, d, **kwargs)
    logits = 3 * torch.randn(n, k, generator=g, dtype=torch.float64)
    phi = torch.softmax(logits, 1)
    if one_hot:
        phi = torch.nn.functional.one_hot(logits.argmax(1), k).double()
    return x, phi.to(x.dtype), m, s2


def _elbo_cases() -> list[Case]:
    g = private_generator("cavi_elbo")
    return [
        Case((*_elbo_inputs(g, 8, 3, 2), 2.0)),
        Case((*_elbo_inputs(g, 10, 2, 1), 1.0)),
        Case((*_elbo_inputs(g, 12, 4, 3), 0.5)),
        Case((*_elbo_inputs(g, 6, 3, 2, one_hot=True), 2.0)),
        Case((*_elbo_inputs(g, 1, 2, 2), 4.0)),
        Case((*_elbo_inputs(g, 9, 3, 2, x_scale=30.0, x_shift=200.0), 1e4)),
        Case((*_elbo_inputs(g, 7, 3, 2, s2_scale=1e-6), 3.0)),
        Case((*_elbo_inputs(g, 5, 1, 2), 2.0)),
        Case((*_elbo_inputs(g, 8, 3, 2, dtype=torch.float32), 2.0)),
    ]


@exercise(NOTEBOOK, hints=(
    "The ELBO has five parts: E[log p(μ)], E[log p(c)], E[log p(x | c, μ)], and the entropies of "
    "q(c) and of q(μ). Each has a closed form under the variational factors.",
    "E||x_i - μ_k||² = ||x_i - m_k||² + D s²_k, and E||μ_k||² = ||m_k||² + D s²_k; the entropy of "
    "N(m, s² I) in D dimensions is ½ D (1 + log 2π + log s²).",
))
def cavi_elbo(student_fn):
    """Check the ELBO of the Bayesian mixture of Gaussians, constants included."""
    compare("cavi_elbo", student_fn, vi.cavi_elbo, _elbo_cases(),
            arg_names=("x", "phi", "m", "s2", "sigma2"), mistakes=_ELBO_MISTAKES, rtol=1e-5,
            gradients=False)


# --------------------------------------------------------------------------- log_mean_exp


def _lme_minus_log(n_fn):
    return lambda x, dim: torch.logsumexp(x, dim) - math.log(n_fn(x, dim))


_LME_MISTAKES = [
    Mistake("exp of a large number overflows to inf (and of a very negative one underflows to "
            "0, giving -inf): subtract the maximum before exponentiating.",
            lambda x, dim: x.exp().mean(dim).log()),
    Mistake("that is log Σ exp, the log of the sum: the mean also divides by the number of "
            "terms.", lambda x, dim: torch.logsumexp(x, dim)),
    Mistake("the mean of the logs is not the log of the mean (Jensen: it is smaller); "
            "exponentiate, average, then take the log.", lambda x, dim: x.mean(dim)),
    Mistake("n is the number of terms along `dim`, not the total number of entries.",
            _lme_minus_log(lambda x, dim: x.numel())),
    Mistake("after subtracting the maximum m you must add it back.",
            lambda x, dim: (x - x.amax(dim, keepdim=True)).exp().mean(dim).log()),
    Mistake("one global maximum is not enough when slices differ in scale: subtract the "
            "maximum of each slice along `dim` (keepdim=True).",
            lambda x, dim: (x - x.max()).exp().mean(dim).log() + x.max()),
    Mistake("you reduced over the wrong dimension; use the `dim` argument everywhere.",
            lambda x, dim: numerics.log_mean_exp(x, -1)),
    Mistake("you reduced over the wrong dimension; use the `dim` argument everywhere.",
            lambda x, dim: numerics.log_mean_exp(x, 0)),
]


def _lme_cases() -> list[Case]:
    g = private_generator("log_mean_exp")
    spread = torch.tensor([[900.0], [-900.0], [0.0]], dtype=torch.float64)
    return [
        Case((randn(g, 3, 5), 1)),
        Case((randn(g, 4, 6), 0)),
        Case((randn(g, 1, 7), -1)),
        Case((randn(g, 2, 3, 4, dtype=torch.float32), 1)),
        Case((randn(g, 4, 6, scale=10.0, shift=1000.0), 1)),
        Case((randn(g, 500, 3, scale=30.0, shift=-800.0), 0)),  # log-weights of 500 samples
        Case((spread + randn(g, 3, 5), 1)),
    ]


@exercise(NOTEBOOK, hints=(
    "A mean is a sum divided by n: start from the stable log-sum-exp of notebook 00.",
    "Subtract the maximum along `dim` before exponentiating, average instead of summing, and add "
    "the maximum back after the log.",
))
def log_mean_exp(student_fn):
    """Check a stable ``log_mean_exp(x, dim)`` on small, huge and very negative inputs."""
    compare("log_mean_exp", student_fn, numerics.log_mean_exp, _lme_cases(),
            arg_names=("x", "dim"), mistakes=_LME_MISTAKES)
