"""The notebook-05 checks accept correct answers and name the usual mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Independent, Normal

from course_utils import check, iwae
from course_utils.checks import ExerciseNotStarted, exercises
from course_utils.checks.core import assert_fails, assert_passes

LOG_2PI = math.log(2 * math.pi)


def test_notebook_05_exercises_are_registered_in_notebook_order():
    assert [e.name for e in exercises("05_iwae")] == ["log_importance_weights", "iwae_bound"]


@pytest.mark.parametrize("name", ["log_importance_weights", "iwae_bound"])
def test_unstarted_exercise_raises_not_started(name):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        getattr(check, name)(stub)


# --------------------------------------------------------------------------- iwae_bound


def test_iwae_bound_accepts_correct_answers():
    assert_passes(check.iwae_bound, iwae.iwae_bound)
    assert_passes(check.iwae_bound, lambda log_w: torch.logsumexp(log_w, dim=0)
                  - math.log(log_w.shape[0]))

    def by_hand(log_w):
        m = log_w.max(dim=0, keepdim=True).values
        return m.squeeze(0) + torch.log(torch.exp(log_w - m).mean(dim=0))

    assert_passes(check.iwae_bound, by_hand)
    assert_passes(check.iwae_bound, lambda log_w: torch.logsumexp(
        log_w - torch.log(torch.tensor(float(len(log_w)))), 0))


@pytest.mark.parametrize("wrong, fragments", [
    (lambda log_w: log_w.mean(0), ["differs", "mean of the log weights", "ELBO"]),
    (lambda log_w: torch.logsumexp(log_w, 0), ["differs", "1/k"]),
    (lambda log_w: torch.logsumexp(log_w, 0) / log_w.shape[0], ["subtract log k"]),
    (lambda log_w: torch.logsumexp(log_w, 1) - math.log(log_w.shape[1]),
     ["shape (5,), expected (3,)", "batch axis"]),
    (lambda log_w: torch.logsumexp(log_w, 0) - math.log(log_w.shape[1]), ["batch size as k"]),
    (lambda log_w: log_w.exp().mean(0).log(), ["inf", "underflows", "stable log-sum-exp"]),
    (lambda log_w: (log_w - log_w.max()).exp().mean(0).log() + log_w.max(),
     ["input 7/7", "global maximum"]),
    (lambda log_w: log_w.max(0).values, ["only the largest log weight"]),
    (lambda log_w: (torch.logsumexp(log_w, 0) - math.log(len(log_w))).mean(),
     ["shape ()", "one bound per image"]),
    (lambda log_w: (torch.logsumexp(log_w, 0) - math.log(len(log_w))).numpy(), ["NumPy"]),
    (lambda log_w: (torch.logsumexp(log_w, 0) - math.log(len(log_w))).float(), ["dtype"]),
    (lambda log_w: log_w.sub_(1.0).mean(0), ["in place"]),
])
def test_iwae_bound_names_the_mistake(wrong, fragments):
    assert_fails(check.iwae_bound, wrong, *fragments)


def test_iwae_bound_reports_an_error_inside_the_students_code():
    def broken(log_w):
        return torch.logsumexp(log_w, dim=2)

    message = assert_fails(check.iwae_bound, broken, "raised IndexError", "line")
    assert "course_utils" not in message


# --------------------------------------------------------------------------- log weights


def by_distributions(x, x_logits, z, mu, logvar):
    log_px = Independent(Bernoulli(logits=x_logits), 1).log_prob(x.expand_as(x_logits))
    log_pz = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
    log_qz = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    return log_px + log_pz - log_qz


def without_constants(x, x_logits, z, mu, logvar):
    """Both Gaussian constants dropped: they cancel, so this is correct too."""
    log_px = (x * F.logsigmoid(x_logits) + (1 - x) * F.logsigmoid(-x_logits)).sum(-1)
    log_pz = -0.5 * z.pow(2).sum(-1)
    log_qz = -0.5 * (logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)
    return log_px + log_pz - log_qz


def test_log_importance_weights_accepts_correct_answers():
    assert_passes(check.log_importance_weights, iwae.log_importance_weights)
    assert_passes(check.log_importance_weights, by_distributions)
    assert_passes(check.log_importance_weights, without_constants)


def _log_bern(x, logits):
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                               reduction="none").sum(-1)


def _log_normal(z, mu, logvar):
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def _log_prior(z):
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda x, l, z, mu, lv: _log_bern(x, l) + _log_prior(z) + _log_normal(z, mu, lv),
     ["differs", "sign of log q is flipped"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) + _log_prior(z), ["log q(z|x) is missing"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) - _log_normal(z, mu, lv), ["prior log p(z)"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) + _log_prior(z) - _log_normal(z, mu, 2 * lv),
     ["not the standard deviation"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) + _log_prior(z)
     + 0.5 * ((z - mu).pow(2) / lv.exp()).sum(-1) + 0.5 * LOG_2PI * z.shape[-1],
     ["normalizer"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) - 0.5 * z.pow(2).sum(-1) - _log_normal(z, mu, lv),
     ["only one of log p(z) and log q(z|x)"]),
    (lambda x, l, z, mu, lv: F.binary_cross_entropy_with_logits(
        l, x.expand_as(l), reduction="none").sum(-1) + _log_prior(z) - _log_normal(z, mu, lv),
     ["negative* log-likelihood"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) / x.shape[-1] + _log_prior(z)
     - _log_normal(z, mu, lv), ["sum over pixels"]),
    (lambda x, l, z, mu, lv: (x * torch.sigmoid(l).log() + (1 - x) * (1 - torch.sigmoid(l)).log())
     .sum(-1) + _log_prior(z) - _log_normal(z, mu, lv), ["input 5/7", "not finite", "stably"]),
    (lambda x, l, z, mu, lv: _log_bern(x, l) + _log_prior(mu) - _log_normal(z, mu, lv),
     ["posterior mean mu instead of at the samples"]),
    (lambda x, l, z, mu, lv: (_log_bern(x, l) + _log_prior(z) - _log_normal(z, mu, lv)).T,
     ["shape (3, 4), expected (4, 3)", "samples first"]),
    (lambda x, l, z, mu, lv: (_log_bern(x, l) + _log_prior(z) - _log_normal(z, mu, lv)).sum(0),
     ["shape (3,)", "do not reduce over the k samples"]),
])
def test_log_importance_weights_names_the_mistake(wrong, fragments):
    assert_fails(check.log_importance_weights, wrong, *fragments)


def test_log_importance_weights_needs_the_logits_not_probabilities():
    def as_probabilities(x, l, z, mu, lv):
        p = l.clamp(1e-6, 1 - 1e-6)
        log_px = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
        return log_px + _log_prior(z) - _log_normal(z, mu, lv)

    assert_fails(check.log_importance_weights, as_probabilities, "outputs logits")


def test_log_importance_weights_without_broadcasting_x_reports_the_students_error():
    def no_broadcast(x, l, z, mu, lv):
        log_px = -F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1)
        return log_px + _log_prior(z) - _log_normal(z, mu, lv)

    assert_fails(check.log_importance_weights, no_broadcast, "raised ValueError",
                 "x: (3, 6) float32")
