"""The notebook-04 checks accept correct answers and name the usual mistakes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from course_utils import check, vae
from course_utils.checks import ExerciseNotStarted, exercises
from course_utils.checks.core import assert_fails, assert_passes

# --------------------------------------------------------------------------- registry


def test_notebook_04_exercises_are_registered():
    names = [e.name for e in exercises("04_vae")]
    assert names == ["gaussian_kl", "bernoulli_log_likelihood", "gaussian_log_likelihood",
                     "negative_elbo", "reparameterize", "score_function_gradient"]


@pytest.mark.parametrize("name", ["gaussian_kl", "bernoulli_log_likelihood",
                                  "gaussian_log_likelihood", "negative_elbo", "reparameterize",
                                  "score_function_gradient"])
def test_unstarted_exercise_raises_not_started(name):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        getattr(check, name)(stub)


# --------------------------------------------------------------------------- gaussian_kl


def test_gaussian_kl_accepts_correct_answers():
    assert_passes(check.gaussian_kl, vae.gaussian_kl)
    assert_passes(check.gaussian_kl, lambda mu, logvar: kl_divergence(
        Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ).sum(-1))
    assert_passes(check.gaussian_kl, lambda mu, logvar: -0.5 * torch.sum(
        1 + logvar - mu.pow(2) - logvar.exp(), dim=1))


@pytest.mark.parametrize("wrong, fragments", [
    (lambda mu, lv: 0.5 * (mu**2 + (2 * lv).exp() - 1 - 2 * lv).sum(-1),
     ["differs", "exp(logvar) is the variance"]),
    (lambda mu, lv: (mu**2 + lv.exp() - 1 - lv).sum(-1), ["factor 1/2"]),
    (lambda mu, lv: 0.5 * (1 + lv - mu**2 - lv.exp()).sum(-1), ["sign is flipped"]),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).mean(-1),
     ["averaged over the latent dimensions"]),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv).sum(-1), ["-1 per dimension"]),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv), ["shape", "one KL per example"]),
    (lambda mu, lv: -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp()), ["not a sum over the batch"]),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(-1).numpy(), ["NumPy array"]),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(-1).float(), ["dtype"]),
])
def test_gaussian_kl_names_the_mistake(wrong, fragments):
    assert_fails(check.gaussian_kl, wrong, *fragments)


# --------------------------------------------------------------------------- bernoulli


def test_bernoulli_log_likelihood_accepts_correct_answers():
    assert_passes(check.bernoulli_log_likelihood, vae.bernoulli_log_likelihood)
    assert_passes(check.bernoulli_log_likelihood, lambda x, logits: -(
        F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)))
    assert_passes(check.bernoulli_log_likelihood, lambda x, logits: (
        x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1))
    assert_passes(check.bernoulli_log_likelihood, lambda x, logits: Bernoulli(
        logits=logits, validate_args=False).log_prob(x).sum(-1))


def _naive(x, logits):
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda x, l: -F.binary_cross_entropy_with_logits(torch.sigmoid(l), x, reduction="none")
     .sum(-1), ["sigmoid twice"]),
    (lambda x, l: -F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").sum(-1),
     ["differs", "from the logits"]),  # clamps log at -100: wrong on huge logits
    (_naive, ["nan", "overflow"]),
    (lambda x, l: F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1),
     ["negative of the log-likelihood"]),
    (lambda x, l: -F.binary_cross_entropy_with_logits(l, x), ["shape", "reduction='none'"]),
    (lambda x, l: -F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1).mean(),
     ["shape", "not a mean over the batch"]),
    (lambda x, l: -F.binary_cross_entropy_with_logits(l, x, reduction="none").mean(-1),
     ["averaged over the pixels"]),
    (lambda x, l: -F.binary_cross_entropy_with_logits(x, l, reduction="none").sum(-1),
     ["swapped"]),
    (lambda x, l: -F.binary_cross_entropy(l, x, reduction="none").sum(-1),
     ["raised", "RuntimeError"]),  # logits passed where probabilities are expected
])
def test_bernoulli_log_likelihood_names_the_mistake(wrong, fragments):
    assert_fails(check.bernoulli_log_likelihood, wrong, *fragments)


# --------------------------------------------------------------------------- gaussian


def _gaussian_ll(x, mean, logvar):
    if not isinstance(logvar, torch.Tensor):
        logvar = torch.tensor(logvar, dtype=x.dtype)
    return (-0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 / logvar.exp())).sum(-1)


def test_gaussian_log_likelihood_accepts_correct_answers():
    assert_passes(check.gaussian_log_likelihood, vae.gaussian_log_likelihood)
    assert_passes(check.gaussian_log_likelihood, _gaussian_ll)

    def with_distributions(x, mean, logvar):
        logvar = torch.as_tensor(logvar, dtype=x.dtype)
        return Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)

    assert_passes(check.gaussian_log_likelihood, with_distributions)


def _ll(x, m, lv, const=0.5, logvar_factor=0.5, square=0.5, std=lambda lv: (0.5 * lv).exp()):
    lv = torch.as_tensor(lv, dtype=x.dtype)
    s = std(lv)
    return (-const * math.log(2 * math.pi) - logvar_factor * 2 * s.log()
            - square * (x - m) ** 2 / s**2).sum(-1)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda x, m, lv: _ll(x, m, lv, std=lambda lv: lv.exp()), ["exp(logvar) is the variance"]),
    (lambda x, m, lv: _ll(x, m, lv, const=0.0), ["log(2π)"]),
    (lambda x, m, lv: _ll(x, m, lv, logvar_factor=1.0), ["logvar / 2"]),
    (lambda x, m, lv: _ll(x, m, lv, square=1.0), ["2σ²"]),
    (lambda x, m, lv: -_ll(x, m, lv), ["sign is flipped"]),
    (lambda x, m, lv: _ll(x, m, lv) / x.shape[-1], ["averaged over the pixels"]),
    (lambda x, m, lv: (-0.5 * (math.log(2 * math.pi) + lv + (x - m) ** 2 / lv.exp())).sum(-1),
     ["AttributeError", "float"]),  # a float logvar is not handled
])
def test_gaussian_log_likelihood_names_the_mistake(wrong, fragments):
    assert_fails(check.gaussian_log_likelihood, wrong, *fragments)


# --------------------------------------------------------------------------- negative_elbo


def _elbo(x, x_logits, mu, logvar, beta=1.0):
    rec = -vae.bernoulli_log_likelihood(x, x_logits)
    kl = vae.gaussian_kl(mu, logvar)
    return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}


def test_negative_elbo_accepts_correct_answers():
    assert_passes(check.negative_elbo, vae.negative_elbo)
    assert_passes(check.negative_elbo, _elbo)

    def batch_sum_then_divide(x, x_logits, mu, logvar, beta=1.0):
        b = x.shape[0]
        rec = F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / b
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / b
        return {"loss": rec + beta * kl, "rec": rec, "kl": kl}

    assert_passes(check.negative_elbo, batch_sum_then_divide)


def _parts(fn):
    def wrong(x, x_logits, mu, logvar, beta=1.0):
        rec = -vae.bernoulli_log_likelihood(x, x_logits)
        kl = vae.gaussian_kl(mu, logvar)
        return fn(rec, kl, beta)

    return wrong


@pytest.mark.parametrize("wrong, fragments", [
    (_parts(lambda r, k, b: {"loss": (r + b * k).sum(), "rec": r.sum(), "kl": k.sum()}),
     ["sum over the batch"]),
    (_parts(lambda r, k, b: {"loss": (b * r + k).mean(), "rec": r.mean(), "kl": k.mean()}),
     ["beta weights the KL"]),
    (_parts(lambda r, k, b: {"loss": (r + k).mean(), "rec": r.mean(), "kl": k.mean()}),
     ["beta is ignored"]),
    (_parts(lambda r, k, b: {"loss": (r - b * k).mean(), "rec": r.mean(), "kl": k.mean()}),
     ["subtracted"]),
    (_parts(lambda r, k, b: {"loss": (-r + b * k).mean(), "rec": -r.mean(), "kl": k.mean()}),
     ["check its sign"]),
    (lambda x, xl, mu, lv, beta=1.0: {
        "loss": F.binary_cross_entropy_with_logits(xl, x) + beta * vae.gaussian_kl(mu, lv).mean(),
        "rec": F.binary_cross_entropy_with_logits(xl, x), "kl": vae.gaussian_kl(mu, lv).mean()},
     ["averaged over pixels"]),
    (_parts(lambda r, k, b: (r + b * k).mean()), ["returned a Tensor", "dict"]),
    (_parts(lambda r, k, b: {"loss": (r + b * k).mean(), "rec": r.mean()}), ["lacks", "kl"]),
    (_parts(lambda r, k, b: {"loss": r + b * k, "rec": r, "kl": k}), ["scalar"]),
    (_parts(lambda r, k, b: {"loss": (r + b * k).mean().item(), "rec": r.mean(),
                             "kl": k.mean()}), ["Python float", ".item()"]),
])
def test_negative_elbo_names_the_mistake(wrong, fragments):
    assert_fails(check.negative_elbo, wrong, *fragments)


# --------------------------------------------------------------------------- reparameterize


def test_reparameterize_accepts_correct_answers():
    assert_passes(check.reparameterize, vae.reparameterize)
    assert_passes(check.reparameterize,
                  lambda mu, logvar: mu + torch.randn_like(mu) * torch.sqrt(torch.exp(logvar)))
    assert_passes(check.reparameterize,
                  lambda mu, logvar: Normal(mu, torch.exp(0.5 * logvar)).rsample())


@pytest.mark.parametrize("wrong, fragments", [
    (lambda mu, lv: mu + lv.exp() * torch.randn_like(mu),
     ["standard deviation", "exp(logvar) is the variance"]),
    (lambda mu, lv: mu + lv * torch.randn_like(mu), ["logvar itself as the standard deviation"]),
    (lambda mu, lv: mu + (-0.5 * lv).exp() * torch.randn_like(mu), ["sign in the exponent"]),
    (lambda mu, lv: (0.5 * lv).exp() * torch.randn_like(mu), ["centred at 0"]),
    (lambda mu, lv: mu + (0.5 * lv).exp() * torch.rand_like(mu), ["uniform"]),
    (lambda mu, lv: mu + 0 * lv, ["no noise"]),
    (lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn(mu.shape[-1], dtype=mu.dtype),
     ["same noise", "shape of mu"]),
    (lambda mu, lv: mu + (0.5 * lv).exp() * torch.from_numpy(
        np.random.randn(*mu.shape)).to(mu.dtype), ["same torch seed"]),
    (lambda mu, lv: mu + (0.5 * lv).exp() * torch.randn(
        mu.shape, generator=torch.Generator().manual_seed(0), dtype=mu.dtype),
     ["different torch random states"]),
    (lambda mu, lv: Normal(mu, (0.5 * lv).exp()).sample(), ["no gradient", "Normal(...).sample()"]),
    (lambda mu, lv: torch.normal(mu, (0.5 * lv).exp()), ["no gradient reaches mu"]),
    (lambda mu, lv: mu + (0.5 * lv).exp().detach() * torch.randn_like(mu),
     ["no gradient reaches logvar"]),
    (lambda mu, lv: (mu + (0.5 * lv).exp() * torch.randn_like(mu)).float(), ["dtype"]),
    (lambda mu, lv: (mu + (0.5 * lv).exp() * torch.randn_like(mu))[0], ["shape"]),
])
def test_reparameterize_names_the_mistake(wrong, fragments):
    assert_fails(check.reparameterize, wrong, *fragments)


# --------------------------------------------------------------------------- score function


def test_score_function_gradient_accepts_correct_answers():
    assert_passes(check.score_function_gradient, vae.score_function_gradient)

    def with_autograd(f, mu, logvar, num_samples):
        mu, logvar = mu.detach().requires_grad_(True), logvar.detach().requires_grad_(True)
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = q.sample((num_samples,))
        log_q = q.log_prob(z).sum(-1)  # (S,)
        fz = f(z).detach()
        grads = [torch.autograd.grad(log_q[s], [mu, logvar], retain_graph=True)
                 for s in range(num_samples)] if num_samples < 10 else None
        if grads is not None:
            return (torch.stack([g[0] for g in grads]) * fz[:, None],
                    torch.stack([g[1] for g in grads]) * fz[:, None])
        # vectorised: the same scores in closed form for large S
        eps = (z - mu) / torch.exp(0.5 * logvar)
        return (fz[:, None] * eps / torch.exp(0.5 * logvar)).detach(), (
            fz[:, None] * 0.5 * (eps**2 - 1)).detach()

    assert_passes(check.score_function_gradient, with_autograd)


def _sf(score_mu, score_lv):
    def wrong(f, mu, logvar, num_samples):
        std = (0.5 * logvar).exp()
        eps = torch.randn(num_samples, mu.shape[0], dtype=mu.dtype)
        fz = f(mu + std * eps)[:, None]
        return fz * score_mu(eps, std), fz * score_lv(eps, std)

    return wrong


def _reparam_estimator(f, mu, logvar, num_samples):
    eps = torch.randn(num_samples, mu.shape[0], dtype=mu.dtype)
    std = (0.5 * logvar).exp()
    z = (mu + std * eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(z).sum(), z)
    return grad, grad * 0.5 * std * eps


@pytest.mark.parametrize("wrong, fragments", [
    (_sf(lambda e, s: e * s, lambda e, s: 0.5 * (e**2 - 1)), ["biased", "power of σ"]),
    (_sf(lambda e, s: e, lambda e, s: 0.5 * (e**2 - 1)), ["power of σ"]),
    (_sf(lambda e, s: e / s, lambda e, s: 0.5 * e**2), ["-1 inside"]),
    (_sf(lambda e, s: e / s, lambda e, s: e**2 - 1), ["factor 1/2"]),
    (_sf(lambda e, s: e / s, lambda e, s: (e**2 - 1) / s), ["chain rule"]),
    (_reparam_estimator, ["every estimate is 0", "never differentiates f"]),
    (lambda f, mu, lv, n: tuple(g.mean(0) for g in vae.score_function_gradient(f, mu, lv, n)),
     ["shape", "do not average"]),
    (lambda f, mu, lv, n: tuple(g.mean(0, keepdim=True).expand(n, -1)
                                for g in vae.score_function_gradient(f, mu, lv, n)),
     ["every row"]),
    (lambda f, mu, lv, n: vae.score_function_gradient(f, mu, lv, n)[0], ["tuple of 2"]),
    (lambda f, mu, lv, n: tuple(g.double() for g in vae.score_function_gradient(f, mu, lv, n)),
     ["dtype"]),
    (lambda f, mu, lv, n: tuple(torch.from_numpy(g.numpy()).mul(0).add(
        torch.from_numpy(np.random.randn(*g.shape)).to(g.dtype))
        for g in vae.score_function_gradient(f, mu, lv, n)), ["same torch seed"]),
])
def test_score_function_gradient_names_the_mistake(wrong, fragments):
    assert_fails(check.score_function_gradient, wrong, *fragments)
