"""The notebook-03 checks accept correct answers and name the usual mistakes."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from course_utils import check, numerics, vi
from course_utils.checks import ExerciseNotStarted, exercises
from course_utils.checks.core import assert_fails, assert_passes

NAMES = ["kl_mvn", "mean_field_update", "cavi_step", "cavi_elbo", "log_mean_exp"]


def test_notebook_03_exercises_are_registered():
    assert [e.name for e in exercises("03_variational_inference")] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_unstarted_exercise_raises_not_started(name):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        getattr(check, name)(stub)


# --------------------------------------------------------------------------- kl_mvn


def _kl_naive(mu1, cov1, mu2, cov2, trace=True, logdet=True, half=0.5, minus_d=True):
    """A student's direct transcription of the formula with inverse and logdet."""
    inv2 = torch.linalg.inv(cov2)
    diff = (mu2 - mu1).unsqueeze(-1)
    value = (diff.mT @ inv2 @ diff)[..., 0, 0]
    if trace:
        value = value + torch.diagonal(inv2 @ cov1, dim1=-2, dim2=-1).sum(-1)
    if logdet:
        value = value + torch.logdet(cov2) - torch.logdet(cov1)
    if minus_d:
        value = value - mu1.shape[-1]
    return half * value


def test_kl_mvn_accepts_correct_answers():
    assert_passes(check.kl_mvn, vi.kl_mvn)
    assert_passes(check.kl_mvn, _kl_naive)
    assert_passes(check.kl_mvn, lambda mu1, cov1, mu2, cov2: kl_divergence(
        MultivariateNormal(mu1, cov1), MultivariateNormal(mu2, cov2)))


def _kl_cholesky_half_logdet(mu1, cov1, mu2, cov2):
    l1, l2 = torch.linalg.cholesky(cov1), torch.linalg.cholesky(cov2)
    value = _kl_naive(mu1, cov1, mu2, cov2, logdet=False)
    return value + 0.5 * (l2.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                          - l1.diagonal(dim1=-2, dim2=-1).log().sum(-1))


@pytest.mark.parametrize("wrong, fragments", [
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu2, cov2, mu1, cov1),
     ["differs", "not symmetric", "KL(N(mu2, cov2) || N(mu1, cov1))"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2, trace=False),
     ["trace term", "missing"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2, logdet=False),
     ["log-determinant term is missing"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2) - torch.logdet(cov2)
     + torch.logdet(cov1), ["upside down"]),
    (_kl_cholesky_half_logdet, ["factor 2 is missing"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2, half=1.0), ["factor 1/2"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2, minus_d=False),
     ["constant −D"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2) - 0.5 * mu1.shape[0]
     + 0.5 * mu1.shape[-1], ["not of the first (the batch)"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, torch.diag_embed(cov1.diagonal(dim1=-2, dim2=-1)),
                                            mu2, torch.diag_embed(cov2.diagonal(dim1=-2, dim2=-1))),
     ["only uses the diagonals"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2).sum(), ["shape", "expected"]),
    (lambda mu1, cov1, mu2, cov2: _kl_naive(mu1, cov1, mu2, cov2).numpy(), ["NumPy array"]),
])
def test_kl_mvn_names_the_mistake(wrong, fragments):
    assert_fails(check.kl_mvn, wrong, *fragments)


def test_kl_mvn_quadratic_term_with_the_first_covariance():
    def wrong(mu1, cov1, mu2, cov2):
        diff = (mu2 - mu1).unsqueeze(-1)
        quad1 = (diff.mT @ torch.linalg.inv(cov1) @ diff)[..., 0, 0]
        quad2 = (diff.mT @ torch.linalg.inv(cov2) @ diff)[..., 0, 0]
        return _kl_naive(mu1, cov1, mu2, cov2) + 0.5 * (quad1 - quad2)

    assert_fails(check.kl_mvn, wrong, "wrong covariance")


# --------------------------------------------------------------------------- mean_field_update


def test_mean_field_update_accepts_correct_answers():
    assert_passes(check.mean_field_update, vi.mean_field_update)

    def via_covariance(m_other, mu, precision, i):
        # the conditional p(z_i | z_j = m_other), computed from the covariance
        cov, j = torch.linalg.inv(precision), 1 - i
        mean = mu[i] + cov[i, j] / cov[j, j] * (m_other - mu[j])
        return mean, cov[i, i] - cov[i, j] ** 2 / cov[j, j]

    assert_passes(check.mean_field_update, via_covariance)

    def with_indices(m_other, mu, precision, i):
        j = 1 if i == 0 else 0
        var = 1.0 / precision[i][i]
        return mu[i] - var * precision[i][j] * (m_other - mu[j]), var

    assert_passes(check.mean_field_update, with_indices)


def _mf(mean_fn, var_fn):
    return lambda m, mu, lam, i: (mean_fn(m, mu, lam, i, 1 - i), var_fn(lam, i, 1 - i))


def _good_mean(m, mu, lam, i, j):
    return mu[i] - lam[i, j] / lam[i, i] * (m - mu[j])


@pytest.mark.parametrize("wrong, fragments", [
    (_mf(_good_mean, lambda lam, i, j: lam[i, i]), ["`var_i` differs", "inverse of a precision"]),
    (_mf(_good_mean, lambda lam, i, j: torch.linalg.inv(lam)[i, i]),
     ["true marginal variance"]),
    (_mf(lambda m, mu, lam, i, j: mu[i] + lam[i, j] / lam[i, i] * (m - mu[j]),
         lambda lam, i, j: 1 / lam[i, i]), ["`mean_i` differs", "sign"]),
    (_mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] / lam[i, i] * m,
         lambda lam, i, j: 1 / lam[i, i]), ["(m_j − μ_j)"]),
    (_mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] * (m - mu[j]),
         lambda lam, i, j: 1 / lam[i, i]), ["divided by a diagonal precision"]),
    (_mf(lambda m, mu, lam, i, j: mu[i] - lam[i, j] / lam[j, j] * (m - mu[j]),
         lambda lam, i, j: 1 / lam[i, i]), ["Λ_ii, not of the other one"]),
    (lambda m, mu, lam, i: vi.mean_field_update(m, mu.flip(0), lam.flip(0, 1), i),
     ["updated the other coordinate"]),
    (lambda m, mu, lam, i: vi.mean_field_update(m, mu, lam, i)[::-1], ["outputs are swapped"]),
    (lambda m, mu, lam, i: (mu[i] + lam[i, 1 - i] / lam[1 - i, 1 - i] * (m - mu[1 - i]),
                            lam[i, i] - lam[i, 1 - i] ** 2 / lam[1 - i, 1 - i]),
     ["used it as the covariance"]),
    (lambda m, mu, lam, i: (_good_mean(m, mu, lam, i, 1 - i), (1 / lam[i, i]).item()),
     ["Python float"]),
    (lambda m, mu, lam, i: (_good_mean(m, mu, lam, i, 1 - i).float(), 1 / lam[i, i]),
     ["dtype"]),
])
def test_mean_field_update_names_the_mistake(wrong, fragments):
    assert_fails(check.mean_field_update, wrong, *fragments)


# --------------------------------------------------------------------------- cavi_step


def cavi_step_loops(x, m, s2, sigma2):
    """Blei et al.'s Algorithm 2 written with loops, as a student might."""
    n, d = x.shape
    k = m.shape[0]
    phi = torch.zeros(n, k, dtype=x.dtype)
    for i in range(n):
        logits = torch.stack([x[i] @ m[j] - 0.5 * (m[j] @ m[j] + d * s2[j]) for j in range(k)])
        phi[i] = torch.exp(logits - torch.logsumexp(logits, 0))
    m_new, s2_new = torch.zeros_like(m), torch.zeros_like(s2)
    for j in range(k):
        s2_new[j] = 1 / (1 / sigma2 + phi[:, j].sum())
        m_new[j] = s2_new[j] * (phi[:, j, None] * x).sum(0)
    return phi, m_new, s2_new


def cavi_step_distances(x, m, s2, sigma2):
    """Logits from -||x - m||^2 / 2 (the same up to a per-row constant)."""
    logits = -0.5 * torch.cdist(x, m).pow(2) - 0.5 * x.shape[1] * s2
    phi = (logits - logits.logsumexp(1, keepdim=True)).exp()
    precision = 1 / sigma2 + phi.sum(0)
    return phi, (phi.T @ x) / precision[:, None], 1 / precision


def test_cavi_step_accepts_correct_answers():
    assert_passes(check.cavi_step, vi.cavi_step)
    assert_passes(check.cavi_step, cavi_step_loops)
    assert_passes(check.cavi_step, cavi_step_distances)


def _step(prior=True, var_term=True, d_factor=True, norm="softmax", m_prior=True):
    def step(x, m, s2, sigma2):
        d = x.shape[1] if d_factor else 1
        logits = x @ m.T - 0.5 * m.pow(2).sum(1) - (0.5 * d * s2 if var_term else 0)
        if norm == "softmax":
            phi = torch.softmax(logits, 1)
        elif norm == "naive":
            phi = logits.exp() / logits.exp().sum(1, keepdim=True)
        elif norm == "columns":
            phi = torch.softmax(logits, 0)
        else:
            phi = logits.exp()
        nk = phi.sum(0)
        s2_new = 1 / (1 / sigma2 + nk) if prior else 1 / nk
        m_new = (phi.T @ x) / ((1 / sigma2 + nk) if (prior and m_prior) else nk)[:, None]
        return phi, m_new, s2_new

    return step


@pytest.mark.parametrize("wrong, fragments", [
    (_step(prior=False), ["`m` differs", "forgets the prior", "1/σ²"]),
    (_step(m_prior=False), ["`m` differs", "your m_k does not"]),
    (lambda x, m, s2, sigma2: (lambda phi: (phi, (phi.T @ x) / (sigma2 + phi.sum(0))[:, None],
                                            1 / (sigma2 + phi.sum(0))))(
        torch.softmax(x @ m.T - 0.5 * (m.pow(2).sum(1) + x.shape[1] * s2), 1)),
     ["not its variance σ²"]),
    (_step(var_term=False), ["`phi` differs", "includes the variance"]),
    (_step(d_factor=False), ["one variance term per dimension"]),
    (_step(norm="naive"), ["nan", "log space"]),
    (_step(norm="columns"), ["not each column"]),
    (_step(norm="none"), ["normalise each row"]),
    (lambda x, m, s2, sigma2: tuple(t.numpy() for t in vi.cavi_step(x, m, s2, sigma2)),
     ["NumPy array"]),
    (lambda x, m, s2, sigma2: vi.cavi_step(x, m, s2, sigma2)[:2], ["tuple of 3"]),
])
def test_cavi_step_names_the_mistake(wrong, fragments):
    assert_fails(check.cavi_step, wrong, *fragments)


# --------------------------------------------------------------------------- cavi_elbo


def cavi_elbo_distributions(x, phi, m, s2, sigma2):
    """The ELBO from torch.distributions: -KL(q(mu) || p(mu)) + E[log p(x | c, mu)] + ..."""
    n, d = x.shape
    k = m.shape[0]
    q_mu = Normal(m, s2.sqrt()[:, None].expand_as(m))
    p_mu = Normal(torch.zeros_like(m), math.sqrt(sigma2) * torch.ones_like(m))
    kl_mu = kl_divergence(q_mu, p_mu).sum()
    expected_sq = torch.cdist(x, m).pow(2) + d * s2
    log_lik = (phi * (-0.5 * d * math.log(2 * math.pi) - 0.5 * expected_sq)).sum()
    entropy_c = -(phi * phi.clamp_min(1e-300).log()).sum()
    return -kl_mu + log_lik - n * math.log(k) + entropy_c


def test_cavi_elbo_accepts_correct_answers():
    assert_passes(check.cavi_elbo, vi.cavi_elbo)
    assert_passes(check.cavi_elbo, cavi_elbo_distributions)


def _elbo_minus(term):
    """The reference ELBO with one named term removed (computed independently)."""

    def elbo(x, phi, m, s2, sigma2):
        d = x.shape[1]
        terms = {
            "entropy_c": -torch.xlogy(phi, phi).sum(),
            "entropy_mu": 0.5 * d * (1 + math.log(2 * math.pi) + s2.log()).sum(),
            "prior_c": -x.shape[0] * math.log(m.shape[0]) * torch.ones((), dtype=x.dtype),
            "lik_var": -0.5 * d * (phi * s2).sum(),
        }
        return vi.cavi_elbo(x, phi, m, s2, sigma2) - terms[term]

    return elbo


@pytest.mark.parametrize("wrong, fragments", [
    (_elbo_minus("entropy_c"), ["differs", "entropy of q(c)", "missing"]),
    (lambda *a: _elbo_minus("entropy_c")(*a) - (-torch.xlogy(a[1], a[1]).sum()),
     ["wrong sign"]),
    (lambda x, phi, m, s2, sigma2: _elbo_minus("entropy_c")(x, phi, m, s2, sigma2)
     - (phi * phi.log()).sum(), ["nan", "0 · log 0"]),
    (_elbo_minus("entropy_mu"), ["entropy of the Gaussian factors"]),
    (_elbo_minus("prior_c"), ["prior on the assignments"]),
    (_elbo_minus("lik_var"), ["E‖x_i − μ_k‖²"]),
    (lambda x, phi, m, s2, sigma2: vi.cavi_elbo(x, phi, m, s2, sigma2)
     + 0.5 * x.numel() * math.log(2 * math.pi), ["off by a constant", "2π"]),
    (lambda x, phi, m, s2, sigma2: vi.cavi_elbo(x, phi, m, s2, sigma2) / x.shape[0],
     ["averaged"]),
    (lambda x, phi, m, s2, sigma2: vi.cavi_elbo(x, phi, m, s2, sigma2).item(), ["Python float"]),
    (lambda x, phi, m, s2, sigma2: vi.cavi_elbo(x, phi, m, s2, sigma2).reshape(1), ["shape"]),
])
def test_cavi_elbo_names_the_mistake(wrong, fragments):
    assert_fails(check.cavi_elbo, wrong, *fragments)


# --------------------------------------------------------------------------- log_mean_exp


def test_log_mean_exp_accepts_correct_answers():
    assert_passes(check.log_mean_exp, numerics.log_mean_exp)
    assert_passes(check.log_mean_exp,
                  lambda x, dim: torch.logsumexp(x, dim) - math.log(x.shape[dim]))

    def with_max(x, dim):
        m = x.amax(dim, keepdim=True)
        return (m + (x - m).exp().mean(dim, keepdim=True).log()).squeeze(dim)

    assert_passes(check.log_mean_exp, with_max)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda x, dim: x.exp().mean(dim).log(), ["inf", "overflows"]),
    (lambda x, dim: torch.logsumexp(x, dim), ["log of the sum"]),
    (lambda x, dim: x.mean(dim), ["mean of the logs", "Jensen"]),
    (lambda x, dim: torch.logsumexp(x, dim) - math.log(x.numel()), ["along `dim`"]),
    (lambda x, dim: (x - x.amax(dim, keepdim=True)).exp().mean(dim).log(), ["add it back"]),
    (lambda x, dim: (x - x.max()).exp().mean(dim).log() + x.max(), ["one global maximum"]),
    (lambda x, dim: torch.logsumexp(x, -1) - math.log(x.shape[-1]), ["shape", "wrong dimension"]),
    (lambda x, dim: np.log(np.mean(np.exp(x.numpy()), axis=dim)), ["NumPy array"]),
])
def test_log_mean_exp_names_the_mistake(wrong, fragments):
    assert_fails(check.log_mean_exp, wrong, *fragments)


def test_messages_name_the_input_and_stay_short():
    message = assert_fails(check.cavi_step, _step(prior=False), "on input 1/8", "x: (8, 2) float64")
    assert "Traceback" not in message
