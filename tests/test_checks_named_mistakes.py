"""The mistakes the feedback issue found unnamed: each wrong answer is rejected and named."""

import math

import torch
import torch.nn.functional as F

from course_utils import check
from course_utils.checks.core import assert_fails, assert_passes

LOG_2PI = math.log(2 * math.pi)


def _log_density(x, mean, cov, det_sign=-1.0, d=None):
    factor = torch.linalg.cholesky(cov)
    y = torch.linalg.solve_triangular(factor, (x - mean).T, upper=False)
    log_det = 2 * factor.diagonal().log().sum()
    d = x.shape[1] if d is None else d(x)
    return -0.5 * (d * LOG_2PI + (y**2).sum(0)) + det_sign * 0.5 * log_det


def test_gaussian_log_density_log_det_sign_and_n_for_d():
    assert_passes(check.gaussian_log_density, _log_density)
    assert_fails(check.gaussian_log_density, lambda x, m, c: _log_density(x, m, c, det_sign=1.0),
                 "log-determinant enters with a minus sign")
    assert_fails(check.gaussian_log_density,
                 lambda x, m, c: _log_density(x, m, c, d=lambda x: x.shape[0]),
                 "x.shape[0] is the number of points")


def test_m_step_with_torch_cov_default_correction():
    def with_cov(x, resp, correction=1):
        nk = resp.sum(0)
        means = resp.T @ x / nk.unsqueeze(1)
        covs = torch.stack([torch.cov(x.T, correction=correction, aweights=resp[:, k])
                            .reshape(x.shape[1], x.shape[1]) for k in range(resp.shape[1])])
        return nk / len(x), means, covs

    assert_passes(check.m_step, lambda x, r: with_cov(x, r, correction=0))
    assert_fails(check.m_step, with_cov, "correction=0")


def test_labeled_loss_with_a_mean_cross_entropy():
    def mean_ce(model, x, y, alpha):
        return -model.elbo(x, y) + alpha * F.cross_entropy(model.classify(x), y)

    assert_fails(check.labeled_loss, mean_ce, "reduction='none'")


def test_unlabeled_loss_with_the_entropy_of_the_logits():
    def entropy_of_logits(model, x):
        logits = model.classify(x)
        q = logits.softmax(-1)
        neg_elbo = torch.stack([-model.elbo(x, torch.full((len(x),), k)) for k in
                                range(model.num_classes)], dim=1)
        return (q * neg_elbo).sum(-1) + (q * logits).sum(-1)

    assert_fails(check.unlabeled_loss, entropy_of_logits, "not the raw logits")


def test_bernoulli_with_an_overflowing_log1p_exp():
    assert_fails(check.bernoulli_log_likelihood,
                 lambda x, l: (x * l - torch.log1p(torch.exp(l))).sum(-1), "F.softplus")
    assert_passes(check.bernoulli_log_likelihood, lambda x, l: (x * l - F.softplus(l)).sum(-1))


def test_logvar_used_as_the_variance_is_named_not_just_nan():
    assert_fails(check.gaussian_kl,
                 lambda mu, lv: 0.5 * (mu.pow(2) + lv - 1 - torch.log(lv)).sum(-1),
                 "log of the variance, not the variance")

    def gaussian(x, m, lv):
        lv = torch.as_tensor(lv, dtype=x.dtype)
        return -0.5 * (LOG_2PI + torch.log(lv) + (x - m).pow(2) / lv).sum(-1)

    assert_fails(check.gaussian_log_likelihood, gaussian, "log of the variance, not the variance")


def test_gmm_sample_with_deterministic_counts_in_order():
    def in_order(n, w, m, c):
        counts = (w * n).round().long()
        counts[-1] = n - counts[:-1].sum()
        z = torch.repeat_interleave(torch.arange(len(w)), counts)
        eps = torch.randn(n, m.shape[1], dtype=m.dtype)
        return m[z] + (torch.linalg.cholesky(c)[z] @ eps.unsqueeze(-1)).squeeze(-1), z

    assert_fails(check.gmm_sample, in_order, "z is not random")


def test_one_hot_without_num_classes():
    assert_fails(check.one_hot, lambda y, k: F.one_hot(y.long()).float(),
                 "width must be `num_classes`")


def test_a_torch_error_is_shown_whole_first_line_first():
    def wrong_shapes(mu, logvar):
        return torch.cat([mu, logvar.T], dim=0).sum(-1)

    message = assert_fails(check.gaussian_kl, wrong_shapes, "raised RuntimeError")
    with torch.no_grad():
        try:
            wrong_shapes(torch.zeros(5, 3), torch.zeros(5, 3))
        except RuntimeError as err:
            torch_says = str(err).splitlines()[0]
    assert message.splitlines()[0].endswith(torch_says)  # whole, not cut mid-sentence
    assert "on input (mu: tensor (5, 3) float32" in message
