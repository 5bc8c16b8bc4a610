"""The GMM checks accept correct answers and name the usual mistakes (notebooks 01 and 02)."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from course_utils import check, gmm
from course_utils.checks import ExerciseNotStarted, exercises
from course_utils.checks import gmm as gmm_checks
from course_utils.checks.core import assert_fails, assert_passes

LOG_2PI = math.log(2 * math.pi)
NAMES = ["gaussian_log_density", "gmm_sample", "gmm_log_likelihood", "e_step", "m_step",
         "gmm_elbo"]


def test_registered_in_their_notebooks():
    assert [e.name for e in exercises("01_latent_variable_models")] == NAMES[:3]
    assert [e.name for e in exercises("02_em")] == NAMES[3:]


@pytest.mark.parametrize("name", NAMES)
def test_reference_passes(name, capsys):
    assert_passes(getattr(check, name), getattr(gmm, name))
    assert f"{name}: " in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_unstarted_exercise(name):
    def unstarted(*args):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        getattr(check, name)(unstarted)


BANKS = {
    "gaussian_log_density": gmm_checks._DENSITY_MISTAKES,
    "gmm_log_likelihood": gmm_checks._LL_MISTAKES,
    "e_step": gmm_checks._E_STEP_MISTAKES,
    "m_step": gmm_checks._M_STEP_MISTAKES,
    "gmm_elbo": gmm_checks._ELBO_MISTAKES,
}


@pytest.mark.parametrize("name", list(BANKS))
def test_every_known_mistake_is_caught_and_named(name):
    for mistake in BANKS[name]:
        assert_fails(getattr(check, name), mistake.fn, mistake.hint[:40])


# --------------------------------------------------------------------------- gaussian_log_density


def density_by_inverse(x, mean, cov):
    diff = x - mean
    maha = (diff @ torch.linalg.inv(cov) * diff).sum(1)
    return -0.5 * (x.shape[1] * LOG_2PI + torch.logdet(cov) + maha)


def density_by_distributions(x, mean, cov):
    return MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


def density_cholesky(x, mean, cov, half_quad=0.5, det_factor=2.0, use_mean=True):
    """A student's Cholesky version with knobs for their typical slips."""
    factor = torch.linalg.cholesky(cov)
    diff = x - mean if use_mean else x
    y = torch.linalg.solve_triangular(factor, diff.T, upper=False)
    log_det = det_factor * factor.diagonal().log().sum()
    return -half_quad * (y**2).sum(0) - 0.5 * log_det - 0.5 * x.shape[1] * LOG_2PI


@pytest.mark.parametrize("fn", [density_by_inverse, density_by_distributions, density_cholesky])
def test_gaussian_log_density_accepts_correct_answers(fn):
    assert_passes(check.gaussian_log_density, fn)


def test_gaussian_log_density_names_mistakes():
    assert_fails(check.gaussian_log_density, lambda x, m, c: density_cholesky(x, m, c, 1.0),
                 "differs", "factor ½")
    assert_fails(check.gaussian_log_density, lambda x, m, c: density_cholesky(x, m, c, 0.5, 1.0),
                 "2 Σ_i log L_ii")
    assert_fails(check.gaussian_log_density,
                 lambda x, m, c: density_cholesky(x, m, c, use_mean=False), "(x - μ)")
    assert_fails(check.gaussian_log_density,
                 lambda x, m, c: density_by_inverse(x, m, c) - 0.5 * torch.logdet(c),
                 "factor ½: the term is -½ log|Σ|")
    assert_fails(check.gaussian_log_density,
                 lambda x, m, c: density_by_inverse(x, m, c).numpy(), "NumPy")
    assert_fails(check.gaussian_log_density,
                 lambda x, m, c: density_by_inverse(x, m, c).sum(), "shape ()")


# --------------------------------------------------------------------------- gmm_sample


def sample_with_distributions(n, weights, means, covs):
    z = Categorical(probs=weights).sample((n,))
    return MultivariateNormal(means[z], covariance_matrix=covs[z]).sample(), z


def sample_by_loop(n, weights, means, covs):
    z = torch.multinomial(weights, n, replacement=True)
    x = torch.empty(n, means.shape[1], dtype=means.dtype)
    for k in range(len(weights)):
        idx = (z == k).nonzero().squeeze(1)
        eps = torch.randn(len(idx), means.shape[1], dtype=means.dtype)
        x[idx] = means[k] + eps @ torch.linalg.cholesky(covs[k]).T
    return x, z


def sample_with(scale=lambda c: torch.linalg.cholesky(c), right=False, z_fn=None, dtype=None,
                numpy_noise=False):
    """A student's gmm_sample with knobs for their typical slips."""
    def fn(n, weights, means, covs):
        z = z_fn(n, weights) if z_fn else torch.multinomial(weights, n, replacement=True)
        if numpy_noise:
            eps = torch.from_numpy(np.random.randn(n, means.shape[1])).to(means.dtype)
        else:
            eps = torch.randn(n, means.shape[1], dtype=means.dtype)
        s = scale(covs)[z]
        noise = (eps.unsqueeze(1) @ s).squeeze(1) if right else (s @ eps.unsqueeze(-1)).squeeze(-1)
        return means[z] + noise, z if dtype is None else z.to(dtype)
    return fn


@pytest.mark.parametrize("fn", [gmm.gmm_sample, sample_with_distributions, sample_by_loop,
                                sample_with()])
def test_gmm_sample_accepts_correct_answers(fn):
    assert_passes(check.gmm_sample, fn)


def test_gmm_sample_names_mistakes():
    assert_fails(check.gmm_sample, sample_with(scale=lambda c: c), "scaled by Σ itself")
    assert_fails(check.gmm_sample, sample_with(right=True), "wrong side")
    assert_fails(check.gmm_sample, sample_with(scale=lambda c: torch.diag_embed(
        c.diagonal(dim1=-2, dim2=-1).sqrt())), "correlations are missing")
    assert_fails(check.gmm_sample, sample_with(scale=lambda c: c.abs().sqrt() * c.sign()),
                 "entry by entry")
    assert_fails(check.gmm_sample, sample_with(
        z_fn=lambda n, w: torch.randint(len(w), (n,))), "frequencies", "uniform")
    assert_fails(check.gmm_sample, sample_with(numpy_noise=True), "same torch.manual_seed")
    assert_fails(check.gmm_sample, sample_with(dtype=torch.float32), "torch.int64")
    shuffled = sample_with()
    assert_fails(check.gmm_sample, lambda n, w, m, c: (shuffled(n, w, m, c)[0],
                                                       shuffled(n, w, m, c)[1].flip(0)),
                 "drawn from the component z_n")
    assert_fails(check.gmm_sample, lambda n, w, m, c: (m[torch.zeros(n, dtype=torch.int64)],
                                                       torch.zeros(n, dtype=torch.int64)),
                 "same for every random seed")
    assert_fails(check.gmm_sample, lambda n, w, m, c: sample_with()(n, w, m, c)[0], "tuple of 2")
    assert_fails(check.gmm_sample, lambda n, w, m, c: (sample_with()(n, w, m, c)[0].double(),
                                                       sample_with()(n, w, m, c)[1]), "dtype")


# --------------------------------------------------------------------------- gmm_log_likelihood


def ll_by_loop(x, weights, means, covs):
    parts = [weights[k].log() + gmm.gaussian_log_density(x, means[k], covs[k])
             for k in range(len(weights))]
    return torch.logsumexp(torch.stack(parts, 1), 1).sum()


def ll_by_distributions(x, weights, means, covs):
    mixture = MixtureSameFamily(Categorical(probs=weights),
                                MultivariateNormal(means, covariance_matrix=covs))
    return mixture.log_prob(x).sum()


@pytest.mark.parametrize("fn", [ll_by_loop, ll_by_distributions])
def test_gmm_log_likelihood_accepts_correct_answers(fn):
    assert_passes(check.gmm_log_likelihood, fn)


def test_gmm_log_likelihood_names_mistakes():
    def naive(x, w, m, c):
        dens = torch.stack([gmm.gaussian_log_density(x, m[k], c[k]).exp()
                            for k in range(len(w))], 1)
        return (dens * w).sum(1).log().sum()

    assert_fails(check.gmm_log_likelihood, naive, "inf", "logsumexp")
    assert_fails(check.gmm_log_likelihood, lambda x, w, m, c: ll_by_loop(x, w, m, c) / len(x),
                 "not the mean")
    assert_fails(check.gmm_log_likelihood,
                 lambda x, w, m, c: ll_by_loop(x, torch.ones_like(w), m, c), "weights π_k")
    assert_fails(check.gmm_log_likelihood, lambda x, w, m, c: sum(
        (w[k] * gmm.gaussian_log_density(x, m[k], c[k])).sum() for k in range(len(w))),
        "Jensen")


# --------------------------------------------------------------------------- e_step


def e_step_by_loop(x, weights, means, covs):
    log_joint = torch.stack([weights[k].log() + gmm.gaussian_log_density(x, means[k], covs[k])
                             for k in range(len(weights))], dim=1)
    return (log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)).exp()


def test_e_step_accepts_correct_answers():
    assert_passes(check.e_step, e_step_by_loop)


def test_e_step_names_mistakes():
    def joint(x, w, m, c):
        return torch.stack([w[k].log() + gmm.gaussian_log_density(x, m[k], c[k])
                            for k in range(len(w))], dim=1)

    assert_fails(check.e_step, lambda x, w, m, c: torch.softmax(joint(x, w, m, c), dim=0),
                 "wrong axis")
    assert_fails(check.e_step, lambda x, w, m, c: joint(x, w, m, c).exp(), "not normalised")
    assert_fails(check.e_step, lambda x, w, m, c: (lambda p: p / p.sum(1, keepdim=True))(
        joint(x, w, m, c).exp()), "nan", "log space")
    assert_fails(check.e_step, lambda x, w, m, c: e_step_by_loop(
        x, torch.full_like(w, 1 / len(w)), m, c), "weights π_k are missing")
    assert_fails(check.e_step, lambda x, w, m, c: e_step_by_loop(x, w, m, c).log(),
                 "log-responsibilities")


# --------------------------------------------------------------------------- m_step


def m_step_by_loop(x, resp):
    n, k = resp.shape
    nk = resp.sum(0)
    means = torch.stack([(resp[:, j:j + 1] * x).sum(0) / nk[j] for j in range(k)])
    covs = torch.stack([torch.einsum("n,ni,nj->ij", resp[:, j], x - means[j], x - means[j])
                        / nk[j] for j in range(k)])
    return nk / n, means, covs


def m_step_student(x, resp, weight_div="N", mean_div="Nk", centre="new", cov_div="Nk"):
    """A student's M-step with knobs for their typical slips."""
    n = x.shape[0]
    nk = resp.sum(0)
    weights = nk / n if weight_div == "N" else nk
    means = resp.T @ x / (nk[:, None] if mean_div == "Nk" else 1.0)
    centres = {"new": means, "global": x.mean(0).expand_as(means),
               "none": torch.zeros_like(means)}[centre]
    covs = []
    for k in range(resp.shape[1]):
        diff = x - centres[k]
        div = nk[k] if cov_div == "Nk" else (n if cov_div == "N" else nk[k] - 1)
        covs.append((resp[:, k, None] * diff).T @ diff / div)
    return weights, means, torch.stack(covs)


@pytest.mark.parametrize("fn", [m_step_by_loop, m_step_student])
def test_m_step_accepts_correct_answers(fn):
    assert_passes(check.m_step, fn)


def test_m_step_names_mistakes():
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r, weight_div="none"),
                 "`weights` differs", "N_k / N")
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r, mean_div="none"),
                 "`means` differs", "divided by N_k")
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r, centre="global"),
                 "`covs` differs", "centred on the new component means")
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r, centre="none"),
                 "centred on the new component means")
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r, cov_div="N"), "not by N")
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r, cov_div="Nk-1"), "N_k - 1")
    assert_fails(check.m_step, lambda x, r: m_step_student(x, r)[:2], "tuple of 3")


# --------------------------------------------------------------------------- gmm_elbo


def elbo_by_formula(x, resp, weights, means, covs):
    log_joint = torch.stack([weights[k].log() + gmm.gaussian_log_density(x, means[k], covs[k])
                             for k in range(len(weights))], dim=1)
    log_q = torch.where(resp > 0, resp.log(), torch.zeros_like(resp))
    return (resp * (log_joint - log_q)).sum()


def test_gmm_elbo_accepts_correct_answers():
    assert_passes(check.gmm_elbo, elbo_by_formula)


def test_gmm_elbo_names_mistakes():
    def expected_log_joint(x, r, w, m, c):
        return sum((r[:, k] * (w[k].log() + gmm.gaussian_log_density(x, m[k], c[k]))).sum()
                   for k in range(len(w)))

    assert_fails(check.gmm_elbo, expected_log_joint, "entropy term is missing")
    assert_fails(check.gmm_elbo, lambda x, r, w, m, c: expected_log_joint(x, r, w, m, c)
                 - (r * r.log()).sum(), "nan", "0 log 0")
    assert_fails(check.gmm_elbo, lambda x, r, w, m, c: elbo_by_formula(x, r, w, m, c) / len(x),
                 "not the mean")
    assert_fails(check.gmm_elbo, lambda x, r, w, m, c: ll_by_loop(x, w, m, c),
                 "log-likelihood, which ignores resp")
    assert_fails(check.gmm_elbo, lambda x, r, w, m, c: expected_log_joint(x, r, w, m, c)
                 + torch.special.xlogy(r, r).sum(), "wrong sign")


def test_student_exception_is_reported_with_its_line():
    def broken(x, resp):
        return resp @ x.T  # shapes do not fit

    message = assert_fails(check.m_step, broken, "raised RuntimeError")
    assert "resp @ x.T" in message
