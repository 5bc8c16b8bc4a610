"""Checks for notebook 05 (tighter bounds): the log importance weights and the IWAE bound.

Both exercises are deterministic functions, so each check compares the student's output with
the reference in ``course_utils.iwae`` on random and edge inputs (very negative log weights,
saturated logits, tiny variances, batch size 1, k = 1) and names the usual mistakes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import iwae
from .core import Case, Mistake, compare, exercise, private_generator, randn

NOTEBOOK = "05_iwae"
LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- log weights


def _log_bern(x, logits):
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                               reduction="none").sum(-1)


def _log_normal(z, mu, std):
    return (-0.5 * LOG_2PI - torch.log(std) - 0.5 * ((z - mu) / std).pow(2)).sum(-1)


def _std_normal(z):
    return _log_normal(z, torch.zeros_like(z), torch.ones_like(z))


def _std(logvar):
    return torch.exp(0.5 * logvar)


_WEIGHT_MISTAKES = [
    Mistake("the sign of log q is flipped: the weight is p(x, z) / q(z|x), so log q(z|x) is "
            "subtracted.",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(z)
            + _log_normal(z, mu, _std(lv))),
    Mistake("log q(z|x) is missing: the weight is p(x, z) / q(z|x), not p(x, z).",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(z)),
    Mistake("the prior log p(z) is missing: p(x, z) = p(x|z) p(z).",
            lambda x, l, z, mu, lv: _log_bern(x, l) - _log_normal(z, mu, _std(lv))),
    Mistake("in q(z|x), exp(logvar) is the variance σ², not the standard deviation σ.",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(z)
            - _log_normal(z, mu, lv.exp())),
    Mistake("log q(z|x) misses its normalizer: a Gaussian's log density has a -1/2 logvar "
            "term per dimension (log σ), besides the squared distance.",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(z)
            - _log_normal(z, mu, _std(lv)) - 0.5 * lv.sum(-1)),
    Mistake("the constant -1/2 log 2π per dimension appears in only one of log p(z) and "
            "log q(z|x); write both densities the same way (then the constants cancel).",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(z)
            - _log_normal(z, mu, _std(lv)) + 0.5 * LOG_2PI * z.shape[-1]),
    Mistake("the constant -1/2 log 2π per dimension appears in only one of log p(z) and "
            "log q(z|x); write both densities the same way (then the constants cancel).",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(z)
            - _log_normal(z, mu, _std(lv)) - 0.5 * LOG_2PI * z.shape[-1]),
    Mistake("log p(x|z) has the wrong sign: binary cross-entropy is the *negative* "
            "log-likelihood.",
            lambda x, l, z, mu, lv: -_log_bern(x, l) + _std_normal(z)
            - _log_normal(z, mu, _std(lv))),
    Mistake("log p(x|z) is a sum over pixels (independent Bernoullis), not a mean.",
            lambda x, l, z, mu, lv: _log_bern(x, l) / x.shape[-1] + _std_normal(z)
            - _log_normal(z, mu, _std(lv))),
    Mistake("log p(x|z) is not finite for large logits: log(sigmoid(l)) underflows. Compute "
            "it from the logits stably (F.logsigmoid or binary_cross_entropy_with_logits).",
            lambda x, l, z, mu, lv: (x * torch.log(torch.sigmoid(l))
                                     + (1 - x) * torch.log(1 - torch.sigmoid(l))).sum(-1)
            + _std_normal(z) - _log_normal(z, mu, _std(lv))),
    Mistake("the decoder outputs logits, not probabilities: pass them through a sigmoid (or "
            "use binary_cross_entropy_with_logits).",
            lambda x, l, z, mu, lv: -F.binary_cross_entropy(
                l.clamp(1e-6, 1 - 1e-6), x.expand_as(l), reduction="none").sum(-1)
            + _std_normal(z) - _log_normal(z, mu, _std(lv))),
    Mistake("the prior is evaluated at the posterior mean mu instead of at the samples z.",
            lambda x, l, z, mu, lv: _log_bern(x, l) + _std_normal(mu)
            - _log_normal(z, mu, _std(lv))),
    Mistake("return one log weight per sample and image, shape (k, B) with the samples first.",
            lambda x, l, z, mu, lv: (_log_bern(x, l) + _std_normal(z)
                                     - _log_normal(z, mu, _std(lv))).T),
    Mistake("return one log weight per sample and image, shape (k, B): do not reduce over "
            "the k samples (the IWAE bound does that next).",
            lambda x, l, z, mu, lv: (_log_bern(x, l) + _std_normal(z)
                                     - _log_normal(z, mu, _std(lv))).sum(0)),
    Mistake("return one log weight per sample and image, shape (k, B): do not reduce over "
            "the k samples (the IWAE bound does that next).",
            lambda x, l, z, mu, lv: (_log_bern(x, l) + _std_normal(z)
                                     - _log_normal(z, mu, _std(lv))).mean(0)),
]


def _weight_case(g, k, B, D, Z, *, logit_scale=2.0, logvar_shift=0.0, far=False,
                 dtype=torch.float64) -> Case:
    x = torch.bernoulli(torch.rand(B, D, generator=g, dtype=dtype), generator=g)  # binary pixels
    x_logits = randn(g, k, B, D, scale=logit_scale, dtype=dtype)
    mu = randn(g, B, Z, dtype=dtype)
    logvar = randn(g, B, Z, scale=0.5, shift=logvar_shift, dtype=dtype)
    eps = randn(g, k, B, Z, scale=3.0 if far else 1.0, dtype=dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    return Case((x, x_logits, z, mu, logvar))


def _weight_cases() -> list[Case]:
    g = private_generator("log_importance_weights")
    return [
        _weight_case(g, 4, 3, 6, 2, dtype=torch.float32),
        _weight_case(g, 5, 2, 8, 3),
        _weight_case(g, 1, 1, 5, 2),
        _weight_case(g, 3, 4, 7, 3),
        _weight_case(g, 2, 3, 6, 2, logit_scale=60.0),
        _weight_case(g, 3, 2, 5, 4, logvar_shift=-12.0),
        _weight_case(g, 6, 2, 4, 2, logvar_shift=2.0, far=True),
    ]


@exercise(NOTEBOOK, hints=(
    "Three log densities per sample and image: log p(x | z) (Bernoulli, from logits), log p(z) "
    "(standard normal) and log q(z | x) (diagonal normal); sum each over its last dimension.",
    "x has shape (B, D) but the logits (k, B, D): expand x to the logits' shape; mu and logvar (B,"
    " Z) broadcast against z (k, B, Z) as they are.",
))
def log_importance_weights(student_fn):
    """Check ``log_importance_weights(x, x_logits, z, mu, logvar) -> (k, B)`` (the reference)."""
    compare("log_importance_weights", student_fn, iwae.log_importance_weights, _weight_cases(),
            arg_names=("x", "x_logits", "z", "mu", "logvar"), mistakes=_WEIGHT_MISTAKES,
            rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- iwae_bound


_BOUND_MISTAKES = [
    Mistake("this is the mean of the log weights, i.e. the ELBO (k-sample estimate), not the "
            "IWAE bound: the average over the k samples goes inside the log.",
            lambda log_w: log_w.mean(0)),
    Mistake("the average over samples has a 1/k: log of the mean, not log of the sum. "
            "Where does the 1/k go once you take the log?",
            lambda log_w: torch.logsumexp(log_w, 0)),
    Mistake("a log of a mean is not a sum of logs divided by k: subtract log k instead of "
            "dividing the log-sum-exp by k.",
            lambda log_w: torch.logsumexp(log_w, 0) / log_w.shape[0]),
    Mistake("you reduced over the batch axis; log_w has shape (k, B): the k samples are "
            "along dim 0, and there is one bound per image.",
            lambda log_w: torch.logsumexp(log_w, 1) - math.log(log_w.shape[1])),
    Mistake("the samples are along dim 0, so k = log_w.shape[0]; you used the batch size "
            "as k.",
            lambda log_w: torch.logsumexp(log_w, 0) - math.log(log_w.shape[1])),
    Mistake("one global maximum is not enough: each image's log weights have their own "
            "scale, so subtract the maximum over the samples of each image (dim 0).",
            lambda log_w: (log_w - log_w.max()).exp().mean(0).log() + log_w.max()),
    Mistake("exp of log weights around -1000 underflows to 0 (and log 0 = -inf): use a "
            "stable log-sum-exp (subtract the maximum before exponentiating).",
            lambda log_w: log_w.exp().mean(0).log()),
    Mistake("you kept only the largest log weight; the bound averages all k weights "
            "(inside the log).",
            lambda log_w: log_w.amax(0)),
    Mistake("return one bound per image, shape (B,), not the mean over the batch.",
            lambda log_w: (torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])).mean()),
]


def _bound_cases() -> list[Case]:
    g = private_generator("iwae_bound")
    spread = torch.tensor([[-1000.0, 50.0, -3.0]], dtype=torch.float64)
    return [
        Case((randn(g, 5, 3, scale=3.0, shift=-100.0),)),
        Case((randn(g, 4, 4, scale=2.0, shift=-20.0),)),
        Case((randn(g, 1, 6, scale=5.0, shift=-80.0),)),
        Case((randn(g, 10, 1, scale=4.0, shift=-90.0),)),
        Case((randn(g, 50, 7, scale=10.0, shift=-90.0, dtype=torch.float32),)),
        Case((randn(g, 8, 3, scale=20.0, shift=-1000.0),)),
        Case((spread + randn(g, 6, 3, scale=2.0),)),
    ]


@exercise(NOTEBOOK, hints=(
    "The bound is the log of the average of the k weights, and the weights are given as logs.",
    "Use torch.logsumexp over dim 0 and subtract log k: never exponentiate log_w directly.",
))
def iwae_bound(student_fn):
    """Check ``iwae_bound(log_w (k, B)) -> (B,)`` against the reference."""
    compare("iwae_bound", student_fn, iwae.iwae_bound, _bound_cases(), arg_names=("log_w",),
            mistakes=_BOUND_MISTAKES, rtol=1e-5, atol=1e-5)
