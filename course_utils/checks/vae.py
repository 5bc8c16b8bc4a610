"""Checks for notebook 04 (the VAE): the pieces of the loss and the two gradient estimators.

``gaussian_kl``, the log-likelihoods and ``negative_elbo`` are compared with the reference on
random and edge inputs, with a bank of known mistakes. ``reparameterize`` and
``score_function_gradient`` are random, so their checks test moments over many draws,
gradients, the use of torch's RNG, and shapes, dtypes and devices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import vae
from .core import (
    Case,
    Mistake,
    _as_parts,
    call_student,
    check_gradients,
    check_tensor_like,
    check_type,
    compare,
    compare_output,
    exercise,
    fail,
    passed,
    private_generator,
    randn,
)

NOTEBOOK = "04_vae"
LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- gaussian_kl

_KL_MISTAKES = [
    Mistake("exp(logvar) is the variance σ², not the standard deviation σ: check every place "
            "where you use σ or σ².",
            lambda mu, lv: 0.5 * (mu.pow(2) + (2 * lv).exp() - 1 - 2 * lv).sum(-1)),
    Mistake("logvar is the log of the variance, not the variance: σ² = exp(logvar) and "
            "log σ² = logvar (log of a negative logvar is nan).",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv - 1 - torch.log(lv)).sum(-1)),
    Mistake("the closed form has a factor 1/2 in front of the sum.",
            lambda mu, lv: (mu.pow(2) + lv.exp() - 1 - lv).sum(-1)),
    Mistake("the sign is flipped: a KL divergence is never negative. The lecture's formula "
            "gives -KL; negate it.",
            lambda mu, lv: -0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum(-1)),
    Mistake("you averaged over the latent dimensions; the KL of a diagonal Gaussian is a sum "
            "over dimensions (one term per dimension).",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean(-1)),
    Mistake("the constant -1 per dimension is missing: the KL must be 0 when mu = 0 and "
            "logvar = 0.",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - lv).sum(-1)),
    Mistake("check the sign of the log-variance term: it enters as -logvar.",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 + lv).sum(-1)),
    Mistake("reduce over the latent dimension only (dim=-1): return one KL per example, "
            "shape (B,).",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv)),
    Mistake("reduce over the latent dimension only (dim=-1): return one KL per example, "
            "shape (B,), not a sum over the batch.",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum()),
    Mistake("reduce over the latent dimension only (dim=-1): return one KL per example, "
            "shape (B,), not a mean over the batch.",
            lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum(-1).mean()),
]


def _kl_cases() -> list[Case]:
    g = private_generator("gaussian_kl")
    return [
        Case((randn(g, 5, 3, scale=2.0, dtype=torch.float32),
              randn(g, 5, 3, dtype=torch.float32))),
        Case((randn(g, 4, 6), randn(g, 4, 6))),
        Case((randn(g, 1, 2), randn(g, 1, 2))),
        Case((randn(g, 6, 1), randn(g, 6, 1))),
        Case((randn(g, 3, 4, scale=100.0), randn(g, 3, 4, scale=5.0))),
        Case((randn(g, 3, 4), torch.full((3, 4), -20.0, dtype=torch.float64))),
        Case((torch.zeros(2, 5, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64)),
             label="mu = 0, logvar = 0 (q equals the prior)"),
    ]


@exercise(NOTEBOOK, hints=(
    "Both Gaussians are diagonal, so the KL is a sum of one-dimensional KLs, one per latent "
    "dimension; return one number per example.",
    "Per dimension, KL(N(μ, σ²) || N(0, 1)) = ½ (μ² + σ² - 1 - log σ²); remember that exp(logvar) "
    "is σ².",
))
def gaussian_kl(student_fn):
    """Check KL(N(mu, diag e^logvar) || N(0, I)) per example against the closed form."""
    compare("gaussian_kl", student_fn, vae.gaussian_kl, _kl_cases(),
            arg_names=("mu", "logvar"), mistakes=_KL_MISTAKES)


# --------------------------------------------------------------------------- bernoulli


def _naive_bernoulli(x, logits):
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


_BERNOULLI_MISTAKES = [
    Mistake("the logits went through a sigmoid twice: binary_cross_entropy_with_logits "
            "applies the sigmoid itself, so pass it the logits, not probabilities.",
            lambda x, l: -F.binary_cross_entropy_with_logits(
                torch.sigmoid(l), x, reduction="none").sum(-1)),
    Mistake("log σ(l) and log(1 - σ(l)) computed from probabilities overflow for large "
            "|logits| (log 0 = -inf, and 0 * -inf = nan). Compute them from the logits "
            "(e.g. with F.logsigmoid, or binary_cross_entropy_with_logits).",
            _naive_bernoulli),
    Mistake("through probabilities, large |logits| lose precision (sigmoid rounds to 0 or 1 "
            "and F.binary_cross_entropy clips the log at -100). Compute from the logits (e.g. "
            "F.binary_cross_entropy_with_logits or F.logsigmoid).",
            lambda x, l: -F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").sum(-1)),
    Mistake("log(1 + exp(l)) overflows to inf for large logits (exp(100) is inf in float32): "
            "use F.softplus(l), or F.binary_cross_entropy_with_logits, which stay finite.",
            lambda x, l: (x * l - torch.log1p(torch.exp(l))).sum(-1)),
    Mistake("this is the binary cross-entropy, the negative of the log-likelihood: flip "
            "the sign.",
            lambda x, l: F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1)),
    Mistake("you averaged over the pixels; the log-likelihood of independent pixels is a "
            "sum over D (F.binary_cross_entropy_with_logits averages unless "
            "reduction='none' or 'sum').",
            lambda x, l: -F.binary_cross_entropy_with_logits(l, x, reduction="none").mean(-1)),
    Mistake("the arguments are swapped: the first argument of "
            "binary_cross_entropy_with_logits is the logits, the second the data x.",
            lambda x, l: -F.binary_cross_entropy_with_logits(x, l, reduction="none").sum(-1)),
    Mistake("x and 1 - x are swapped: a pixel with x = 1 should contribute log σ(logit).",
            lambda x, l: -F.binary_cross_entropy_with_logits(l, 1 - x, reduction="none")
            .sum(-1)),
    Mistake("reduce over the pixels only (dim=-1): return one value per image, shape (B,).",
            lambda x, l: -F.binary_cross_entropy_with_logits(l, x, reduction="none")),
    Mistake("reduce over the pixels only (dim=-1): return one value per image, shape (B,), "
            "not a sum over the batch.",
            lambda x, l: -F.binary_cross_entropy_with_logits(l, x, reduction="sum")),
    Mistake("reduce over the pixels only (dim=-1): return one value per image, shape (B,), "
            "not a mean over the batch.",
            lambda x, l: -F.binary_cross_entropy_with_logits(l, x, reduction="none")
            .sum(-1).mean()),
    Mistake("binary_cross_entropy_with_logits averages over every pixel of every image by "
            "default: ask for reduction='none', then reduce over the pixels only.",
            lambda x, l: -F.binary_cross_entropy_with_logits(l, x)),
]


def _bernoulli_cases() -> list[Case]:
    g = private_generator("bernoulli_log_likelihood")
    binary = torch.bernoulli(torch.full((6, 10), 0.4, dtype=torch.float64), generator=g)
    grey = torch.rand(4, 64, generator=g)
    return [
        Case((binary, randn(g, 6, 10, scale=3.0))),
        Case((grey, randn(g, 4, 64, dtype=torch.float32))),
        Case((torch.rand(1, 5, generator=g, dtype=torch.float64), randn(g, 1, 5))),
        Case((torch.bernoulli(torch.full((3, 8), 0.5), generator=g),
              randn(g, 3, 8, scale=50.0, dtype=torch.float32))),
        Case((torch.ones(2, 4, dtype=torch.float64), randn(g, 2, 4, scale=2.0))),
    ]


@exercise(NOTEBOOK, hints=(
    "log Bern(x | p) = x log p + (1 - x) log(1 - p) with p = sigmoid(logit): sum it over the "
    "pixels of each image.",
    "Never take sigmoid then log (it overflows for large logits): "
    'F.binary_cross_entropy_with_logits(..., reduction="none") is -log Bern, computed stably.',
))
def bernoulli_log_likelihood(student_fn):
    """Check Σ_d log Bern(x_d | sigmoid(logits_d)) on binary and grey images, huge logits."""
    compare("bernoulli_log_likelihood", student_fn, vae.bernoulli_log_likelihood,
            _bernoulli_cases(), arg_names=("x", "logits"), mistakes=_BERNOULLI_MISTAKES,
            rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- gaussian


def _as_tensor(logvar, like):
    return logvar if isinstance(logvar, torch.Tensor) else torch.tensor(
        float(logvar), dtype=like.dtype)


def _gauss(x, m, lv, *, const=True, half_logvar=True, half_square=True, std_is_exp=False,
           reduce="sum"):
    lv = _as_tensor(lv, x)
    var = (2 * lv).exp() if std_is_exp else lv.exp()
    log_var = 2 * lv if std_is_exp else lv
    terms = -(0.5 if half_logvar else 1.0) * log_var - (x - m).pow(2) / (
        (2.0 if half_square else 1.0) * var)
    if const:
        terms = terms - 0.5 * LOG_2PI
    terms = terms.expand(torch.broadcast_shapes(x.shape, m.shape, lv.shape))
    return terms.sum(-1) if reduce == "sum" else terms.mean(-1) if reduce == "mean" else terms


_GAUSSIAN_MISTAKES = [
    Mistake("exp(logvar) is the variance σ², not the standard deviation σ.",
            lambda x, m, lv: _gauss(x, m, lv, std_is_exp=True)),
    Mistake("logvar is the log of the variance, not the variance: σ² = exp(logvar) (log of a "
            "negative logvar is nan).",
            lambda x, m, lv: -0.5 * (LOG_2PI + torch.log(torch.as_tensor(lv, dtype=x.dtype))
                                     + (x - m).pow(2) / lv).sum(-1)),
    Mistake("the constant -1/2 log(2π) per pixel is missing (it matters when comparing "
            "likelihoods across models).",
            lambda x, m, lv: _gauss(x, m, lv, const=False)),
    Mistake("the normalizer is log σ = logvar / 2 per pixel: check the factor on logvar.",
            lambda x, m, lv: _gauss(x, m, lv, half_logvar=False)),
    Mistake("the squared error is divided by 2σ² in a Gaussian log-density: a factor 1/2 is "
            "missing.",
            lambda x, m, lv: _gauss(x, m, lv, half_square=False)),
    Mistake("the sign is flipped: return the log-likelihood, not its negative.",
            lambda x, m, lv: -_gauss(x, m, lv)),
    Mistake("you averaged over the pixels; the log-likelihood of independent pixels is a "
            "sum over D.",
            lambda x, m, lv: _gauss(x, m, lv, reduce="mean")),
    Mistake("reduce over the pixels only (dim=-1): return one value per image, shape (B,).",
            lambda x, m, lv: _gauss(x, m, lv, reduce="none")),
    Mistake("reduce over the pixels only (dim=-1): return one value per image, shape (B,), "
            "not a sum over the batch.",
            lambda x, m, lv: _gauss(x, m, lv).sum()),
]


def _gaussian_cases() -> list[Case]:
    g = private_generator("gaussian_log_likelihood")
    x = torch.rand(4, 5, generator=g, dtype=torch.float64)
    return [
        Case((x, randn(g, 4, 5), randn(g, 4, 5))),
        Case((randn(g, 3, 6, dtype=torch.float32), randn(g, 3, 6, dtype=torch.float32),
              randn(g, 6, dtype=torch.float32)),
             label="x, mean (3, 6) float32, logvar (6,): one log-variance per pixel"),
        Case((x, randn(g, 4, 5), -2.0), label="x, mean (4, 5) float64, logvar = -2.0 (a float)"),
        Case((x, x + 1e-3 * randn(g, 4, 5), torch.full((4, 5), -12.0, dtype=torch.float64)),
             label="x, mean (4, 5) float64, tiny variances: logvar = -12"),
        Case((randn(g, 2, 3, scale=100.0), randn(g, 2, 3, scale=100.0),
              randn(g, 2, 3, scale=3.0))),
        Case((randn(g, 1, 7), randn(g, 1, 7), randn(g, 1, 7))),
    ]


@exercise(NOTEBOOK, hints=(
    "log N(x | m, σ²) = -½ (log 2π + log σ² + (x - m)² / σ²) per pixel; sum over pixels.",
    "logvar may be a Python float: turn it into a tensor of x's dtype and device (torch.as_tensor)"
    " before using it.",
))
def gaussian_log_likelihood(student_fn):
    """Check Σ_d log N(x_d | mean_d, e^logvar_d) with tensor, per-pixel and float logvar."""
    compare("gaussian_log_likelihood", student_fn, vae.gaussian_log_likelihood,
            _gaussian_cases(), arg_names=("x", "mean", "logvar"), mistakes=_GAUSSIAN_MISTAKES,
            rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- negative_elbo


def _elbo_mistake(rec_fn, kl_fn, combine):
    def wrong(x, logits, mu, lv, beta=1.0):
        rec, kl = rec_fn(x, logits), kl_fn(mu, lv)
        return combine(rec, kl, beta)

    return wrong


def _rec(x, l):
    return F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1)


def _kl(mu, lv):
    return vae.gaussian_kl(mu, lv)


def _triple(loss, rec, kl):
    return (loss, rec, kl)


_ELBO_MISTAKES = [
    Mistake("sum over the batch gives a loss that grows with the batch size; take the mean "
            "over the batch (of each part).",
            _elbo_mistake(_rec, _kl, lambda r, k, b: _triple((r + b * k).sum(), r.sum(),
                                                             k.sum()))),
    Mistake("beta weights the KL term, not the reconstruction term.",
            _elbo_mistake(_rec, _kl, lambda r, k, b: _triple((b * r + k).mean(), r.mean(),
                                                             k.mean()))),
    Mistake("beta is ignored: it must weight the KL term of the loss.",
            _elbo_mistake(_rec, _kl, lambda r, k, b: _triple((r + k).mean(), r.mean(),
                                                             k.mean()))),
    Mistake("the KL is added to the loss, not subtracted: -ELBO = -E[log p(x|z)] + KL.",
            _elbo_mistake(_rec, _kl, lambda r, k, b: _triple((r - b * k).mean(), r.mean(),
                                                             k.mean()))),
    Mistake("\"rec\" is the negative log-likelihood -log p(x|z) (a positive number); check "
            "its sign.",
            _elbo_mistake(lambda x, l: -_rec(x, l), _kl,
                          lambda r, k, b: _triple((-r + b * k).mean(), r.mean(), k.mean()))),
    Mistake("\"rec\" is the negative log-likelihood -log p(x|z) (a positive number); check "
            "its sign.",
            _elbo_mistake(lambda x, l: -_rec(x, l), _kl,
                          lambda r, k, b: _triple((r + b * k).mean(), r.mean(), k.mean()))),
    Mistake("the reconstruction term is averaged over pixels (the default reduction of "
            "binary_cross_entropy_with_logits); sum over pixels, then average over the batch.",
            _elbo_mistake(lambda x, l: F.binary_cross_entropy_with_logits(
                l, x, reduction="none").mean(-1), _kl,
                lambda r, k, b: _triple((r + b * k).mean(), r.mean(), k.mean()))),
    Mistake("the KL is averaged over latent dimensions; sum over them, then average over the "
            "batch.",
            _elbo_mistake(_rec, lambda mu, lv: vae.gaussian_kl(mu, lv) / mu.shape[-1],
                          lambda r, k, b: _triple((r + b * k).mean(), r.mean(), k.mean()))),
]


def _elbo_cases() -> list[Case]:
    g = private_generator("negative_elbo")
    x = torch.rand(5, 64, generator=g)
    return [
        Case((x, randn(g, 5, 64, dtype=torch.float32), randn(g, 5, 2, dtype=torch.float32),
              randn(g, 5, 2, dtype=torch.float32))),
        Case((x, randn(g, 5, 64, dtype=torch.float32), randn(g, 5, 3, dtype=torch.float32),
              randn(g, 5, 3, dtype=torch.float32)), {"beta": 4.0}),
        Case((torch.bernoulli(torch.full((1, 10), 0.5, dtype=torch.float64), generator=g),
              randn(g, 1, 10), randn(g, 1, 4), randn(g, 1, 4)), {"beta": 0.0}),
        Case((torch.rand(3, 16, generator=g, dtype=torch.float64), randn(g, 3, 16, scale=20.0),
              randn(g, 3, 5, scale=3.0), randn(g, 3, 5, scale=3.0)), {"beta": 0.5}),
    ]


def _reference_elbo(*args, **kwargs):
    out = vae.negative_elbo(*args, **kwargs)
    return out["loss"], out["rec"], out["kl"]


@exercise(NOTEBOOK, hints=(
    "-ELBO = reconstruction term + β · KL, per example; the dictionary holds batch means of the "
    "total and of each part.",
    "Reuse your bernoulli_log_likelihood (rec = minus it) and gaussian_kl, each of shape (B,); "
    "take the means only at the end.",
))
def negative_elbo(student_fn):
    """Check the dict {"loss", "rec", "kl"} of batch means, with several values of beta."""
    name, arg_names = "negative_elbo", ("x", "x_logits", "mu", "logvar")
    cases = _elbo_cases()
    for i, case in enumerate(cases):
        out = call_student(name, student_fn, case, arg_names)
        if not isinstance(out, dict):
            fail(name, f"your function returned a {type(out).__name__}; return a dict "
                       '{"loss": ..., "rec": ..., "kl": ...}.')
        missing = [k for k in ("loss", "rec", "kl") if k not in out]
        if missing:
            fail(name, f"your dict lacks the key(s) {missing}; it has {list(out)}.")
        for key in ("loss", "rec", "kl"):
            if isinstance(out[key], torch.Tensor) and out[key].ndim != 0:
                fail(name, f'out["{key}"] has shape {tuple(out[key].shape)}; each part is a '
                           "scalar: the mean over the batch.")
        expected = _reference_elbo(*case.args, **case.kwargs)
        compare_output(name, (out["loss"], out["rec"], out["kl"]), expected, case,
                       arg_names=arg_names, output_names=('out["loss"]', 'out["rec"]',
                                                          'out["kl"]'),
                       mistakes=_ELBO_MISTAKES, rtol=1e-5, atol=1e-4,
                       position=f"{i + 1}/{len(cases)} ")
    check_gradients(name, _as_parts(student_fn, ("loss", "rec", "kl")), _reference_elbo,
                    cases[0], arg_names=arg_names,
                    output_names=('out["loss"]', 'out["rec"]', 'out["kl"]'))
    passed(name, len(cases))


# --------------------------------------------------------------------------- reparameterize

_MOMENT_MU = (1.5, -2.0, 0.0, 0.3)
_MOMENT_LOGVAR = (0.0, 1.6, -3.0, 2.5)
_NUM_DRAWS = 200_000


def _reparam_cases() -> list[Case]:
    g = private_generator("reparameterize")
    return [
        Case((randn(g, 4, 3, dtype=torch.float32), randn(g, 4, 3, dtype=torch.float32))),
        Case((randn(g, 1, 2), randn(g, 1, 2))),
        Case((randn(g, 3, 5, scale=50.0), torch.full((3, 5), -20.0, dtype=torch.float64)),
             label="mu (3, 5) large, logvar = -20 (tiny variances)"),
    ]


def _moment_hint(mean, std, mu, logvar) -> str:
    """Name the mistake that explains the observed per-dimension mean and std, if any."""
    sigma = (0.5 * logvar).exp()

    def near(a, b, tol=0.03):
        return bool(((a - b).abs() <= tol * b.abs().clamp_min(0.05)).all())

    if near(std, sigma * 12 ** -0.5) and near(mean, mu + 0.5 * sigma, 0.05):
        return ("eps looks uniform on [0, 1]: draw it from a standard normal "
                "(torch.randn_like), not torch.rand_like.")
    if near(std, logvar.exp()):
        return "exp(logvar) is the variance σ², not the standard deviation σ."
    if near(std, logvar.abs()):
        return "you used logvar itself as the standard deviation; logvar is log σ²."
    if near(std, logvar.abs().sqrt()):
        return "logvar is the log of the variance: exponentiate it before taking a root."
    if near(std, (-0.5 * logvar).exp()):
        return "check the sign in the exponent: σ grows with logvar."
    if (mean.abs() <= 6 * sigma / _NUM_DRAWS ** 0.5).all() and near(std, sigma):
        return "the samples are centred at 0, not at mu."
    return ""


def _reparam_moments(name: str, student_fn) -> None:
    mu = torch.tensor(_MOMENT_MU, dtype=torch.float64).expand(_NUM_DRAWS, -1).contiguous()
    logvar = torch.tensor(_MOMENT_LOGVAR, dtype=torch.float64).expand(_NUM_DRAWS, -1)
    case = Case((mu, logvar.contiguous()),
                label=f"{_NUM_DRAWS:,} rows of mu = {list(_MOMENT_MU)}, "
                      f"logvar = {list(_MOMENT_LOGVAR)}")
    z = call_student(name, student_fn, case, ("mu", "logvar"))
    check_type(name, z, mu, "your output")
    check_tensor_like(name, z, mu, "z")
    mean, std = z.detach().mean(0).double(), z.detach().std(0).double()
    sigma = (0.5 * logvar[0]).exp()
    bad_mean = (mean - mu[0]).abs() > 6 * sigma / _NUM_DRAWS ** 0.5 + 1e-6
    bad_std = (std / sigma - 1).abs() > 0.02
    if bad_mean.any() or bad_std.any():
        j = int((bad_mean | bad_std).nonzero()[0])
        hint = _moment_hint(mean, std, mu[0], logvar[0])
        fail(name, f"over {_NUM_DRAWS:,} draws with mu = {_MOMENT_MU[j]}, logvar = "
                   f"{_MOMENT_LOGVAR[j]} (dimension {j}), z has mean {mean[j]:.3g} and "
                   f"standard deviation {std[j]:.3g}; a sample of N(mu, exp(logvar)) has "
                   f"mean {_MOMENT_MU[j]:.3g} and standard deviation {sigma[j]:.3g}."
                   + (f"\nHint: {hint}" if hint else ""))


def _reparam_randomness(name: str, student_fn) -> None:
    mu = torch.tensor([[0.5, -1.0, 2.0]]).expand(8, -1).contiguous()
    logvar = torch.tensor([[0.0, -1.0, 1.0]]).expand(8, -1).contiguous()
    case = Case((mu, logvar), label="8 identical rows mu = [0.5, -1, 2], logvar = [0, -1, 1]")
    z0 = call_student(name, student_fn, case, ("mu", "logvar"), seed=0)
    check_type(name, z0, mu, "your output")
    check_tensor_like(name, z0, mu, "z")
    z0 = z0.detach()
    if torch.allclose(z0, mu):
        fail(name, "z equals mu: there is no noise. z must be a random draw from "
                   "N(mu, exp(logvar)), different at each call.")
    again = call_student(name, student_fn, case, ("mu", "logvar"), seed=0).detach()
    other = call_student(name, student_fn, case, ("mu", "logvar"), seed=1).detach()
    if not torch.equal(z0, again):
        fail(name, "two calls with the same torch seed gave different z: draw eps with "
                   "torch's random functions (e.g. torch.randn_like), not NumPy or Python's "
                   "random module.")
    if torch.equal(z0, other):
        fail(name, "z is the same for different torch random states: draw a fresh eps at "
                   "each call with torch's RNG (torch.randn_like), not a fixed tensor or a "
                   "generator of your own.")
    if torch.allclose(z0, z0[:1].expand_as(z0)):
        fail(name, "every row of z got the same noise: draw eps with the shape of mu, so "
                   "that each example and each dimension gets its own.")


def _reparam_gradients(name: str, student_fn) -> None:
    g = private_generator("reparameterize", salt=1)
    mu, logvar = randn(g, 5, 3), randn(g, 5, 3)
    seen = {}

    def spy(mu, logvar):
        seen["mu"], seen["logvar"] = mu, logvar
        return student_fn(mu, logvar)

    case = Case((mu.requires_grad_(True), logvar.requires_grad_(True)))
    z = call_student(name, spy, case, ("mu", "logvar"))
    check_type(name, z, mu, "your output")
    why = ("sampling with torch.normal or Normal(...).sample(), .detach(), .item() or "
           "torch.no_grad() cuts the gradient")
    if not z.requires_grad:
        fail(name, f"no gradient flows from z back to mu and logvar: {why}. The trick is to "
                   "write z as a differentiable function of mu, logvar and the noise eps.")
    grad_mu, grad_logvar = torch.autograd.grad(
        z.sum(), [seen["mu"], seen["logvar"]], allow_unused=True)
    for arg, grad in (("mu", grad_mu), ("logvar", grad_logvar)):
        if grad is None or not grad.abs().sum() > 0:
            fail(name, f"no gradient reaches {arg} through z: {why}.")
    if not torch.allclose(grad_mu, torch.ones_like(grad_mu)):
        fail(name, "the gradient of z with respect to mu is not 1 in every entry: z should "
                   "be mu plus a noise term that does not depend on mu.")
    z = z.detach()
    if not torch.allclose(grad_logvar, 0.5 * (z - seen["mu"].detach()), atol=1e-6):
        fail(name, "the gradient of z with respect to logvar does not match z = mu + σ·eps "
                   "with σ = exp(logvar / 2): look at how σ is computed from logvar.")


@exercise(NOTEBOOK, hints=(
    "Write z as a deterministic function of (μ, log σ²) and noise ε that does not depend on them, "
    "so gradients flow to μ and log σ².",
    "ε = torch.randn_like(mu); the standard deviation is exp(logvar / 2), not exp(logvar).",
))
def reparameterize(student_fn):
    """Check z ~ N(mu, e^logvar): moments, fresh torch noise, gradients, shape/dtype/device."""
    name = "reparameterize"
    cases = _reparam_cases()
    for case in cases:
        z = call_student(name, student_fn, case, ("mu", "logvar"))
        check_type(name, z, case.args[0], "your output")
        check_tensor_like(name, z, case.args[0], "z")
        if not torch.isfinite(z).all():
            fail(name, f"z contains nan or inf on input ({case.describe(('mu', 'logvar'))}).")
    _reparam_randomness(name, student_fn)
    _reparam_moments(name, student_fn)
    _reparam_gradients(name, student_fn)
    passed(name, len(cases) + 3, "tests pass (shapes, fresh noise, moments, gradients)")


# --------------------------------------------------------------------------- score function


def _square(z):
    return z.pow(2).sum(-1)


def _step(z):
    return (z[:, 0] > 0).to(z.dtype) + 0 * z[:, 0]  # differentiable, with derivative 0


def _linear(z):
    return 3.0 * z.sum(-1)


def _normal_pdf(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


_SF_NUM_SAMPLES = 100_000
_SF_CASES = [
    # f, description, mu, logvar, exact gradient of E_q[f] wrt mu and wrt logvar
    (_square, "f(z) = Σ_j z_j²", (1.0, -0.5), (math.log(4.0), math.log(0.25)),
     (2.0, -1.0), (4.0, 0.25)),
    (_step, "f(z) = 1 if z_0 > 0 else 0 (a step: no useful derivative)", (0.5, 0.0), (0.0, 1.0),
     (_normal_pdf(0.5), 0.0), (-0.25 * _normal_pdf(0.5), 0.0)),
    (_linear, "f(z) = 3 Σ_j z_j", (0.2,), (-1.0,), (3.0,), (0.0,)),
]


def _sf_mistake(score_mu, score_logvar):
    """A wrong score-function estimator from the two wrong scores (eps = (z - mu) / σ)."""

    def wrong(f, mu, logvar, num_samples):
        std = (0.5 * logvar).exp()
        eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype)
        z = mu + std * eps
        fz = f(z).reshape(-1, 1)
        return fz * score_mu(eps, std), fz * score_logvar(eps, std)

    return wrong


def _right_mu(eps, std):
    return eps / std


def _right_logvar(eps, std):
    return 0.5 * (eps.pow(2) - 1)


_SF_MISTAKES = [
    Mistake("the score with respect to mu is (z - mu) / σ²: check the power of σ.",
            _sf_mistake(lambda eps, std: eps * std, _right_logvar)),
    Mistake("the score with respect to mu is (z - mu) / σ²: check the power of σ.",
            _sf_mistake(lambda eps, std: eps, _right_logvar)),
    Mistake("the score with respect to logvar has a -1 inside: E_q[∇ log q] must be 0.",
            _sf_mistake(_right_mu, lambda eps, std: 0.5 * eps.pow(2))),
    Mistake("the score with respect to logvar has a factor 1/2 (σ² = exp(logvar)).",
            _sf_mistake(_right_mu, lambda eps, std: eps.pow(2) - 1)),
    Mistake("that is the derivative of log q with respect to σ; for logvar apply the chain "
            "rule through σ = exp(logvar / 2).",
            _sf_mistake(_right_mu, lambda eps, std: (eps.pow(2) - 1) / std)),
]


def _sf_reference(f, mu, logvar, num_samples):
    return vae.score_function_gradient(f, mu, logvar, num_samples)


@exercise(NOTEBOOK, hints=(
    "REINFORCE: ∇ E_q[f(z)] = E_q[f(z) ∇ log q(z)]. Draw the samples, then multiply f(z) by the "
    "score of each parameter.",
    "For q = N(μ, σ²): ∂ log q / ∂μ = (z - μ) / σ² and ∂ log q / ∂ logvar = ½ ((z - μ)² / σ² - 1)."
    " f(z) must not carry gradients (detach it).",
))
def score_function_gradient(student_fn):
    """Check per-sample REINFORCE estimates: unbiased on three f's, fresh noise, shapes."""
    name, arg_names = "score_function_gradient", ("f", "mu", "logvar", "num_samples")
    outputs = ("grad_mu", "grad_logvar")
    # shapes, dtype and fresh noise on a small input
    mu, logvar = torch.tensor([0.3, -0.2], dtype=torch.float32), torch.tensor([0.1, -0.4])
    small = Case((_square, mu, logvar, 6), label="f(z) = Σ z², mu, logvar (2,) float32, "
                                                 "num_samples = 6")
    out = call_student(name, student_fn, small, arg_names)
    expected = _sf_reference(_square, mu, logvar, 6)
    check_type(name, out, expected, "your output")
    for got, want, what in zip(out, expected, outputs, strict=True):
        check_type(name, got, want, what)
        if got.shape != want.shape:
            fail(name, f"{what} has shape {tuple(got.shape)} for num_samples = 6 and Z = 2; "
                       "expected (6, 2): one estimate per sample, do not average them.")
        check_tensor_like(name, got, want, what)
    again = call_student(name, student_fn, small, arg_names, seed=0)
    other = call_student(name, student_fn, small, arg_names, seed=1)
    if not all(torch.equal(a, b) for a, b in zip(out, again, strict=True)):
        fail(name, "two calls with the same torch seed gave different estimates: draw the "
                   "samples with torch's random functions, not NumPy or Python's random.")
    if all(torch.equal(a, b) for a, b in zip(out, other, strict=True)):
        fail(name, "the estimates do not change with torch's random state: draw fresh "
                   "samples z ~ q at each call (e.g. with torch.randn).")
    if torch.allclose(out[0], out[0][:1].expand_as(out[0])):
        fail(name, "every row of grad_mu is the same: return one estimate per sample z_s, "
                   "do not average over the samples.")
    # unbiasedness: the mean of the estimates is the exact gradient
    for f, about, mu, logvar, exact_mu, exact_logvar in _SF_CASES:
        mu = torch.tensor(mu, dtype=torch.float64)
        logvar = torch.tensor(logvar, dtype=torch.float64)
        case = Case((f, mu, logvar, _SF_NUM_SAMPLES),
                    label=f"{about}, mu = {mu.tolist()}, logvar = "
                          f"{[round(v, 3) for v in logvar.tolist()]}")
        got = call_student(name, student_fn, case, arg_names)
        reference = _sf_reference(f, mu, logvar, _SF_NUM_SAMPLES)
        for i, what in enumerate(outputs):
            check_type(name, got[i], reference[i], what)
            check_tensor_like(name, got[i], reference[i], what)
        exact = (torch.tensor(exact_mu, dtype=torch.float64),
                 torch.tensor(exact_logvar, dtype=torch.float64))
        _check_unbiased(name, got, reference, exact, case, outputs)
    passed(name, len(_SF_CASES) + 1, "tests pass (shapes, fresh noise, unbiased on 3 f's)")


def _sample_means_agree(got, target, reference) -> bool:
    tolerance = 6 * reference.std(0) / reference.shape[0] ** 0.5 + 1e-3
    return bool(((got.mean(0) - target).abs() <= tolerance).all())


def _check_unbiased(name, got, reference, exact, case, outputs) -> None:
    got = tuple(g.detach().double() for g in got)
    if all(torch.isfinite(g).all() for g in got) and all(
            _sample_means_agree(g, e, r) for g, e, r in zip(got, exact, reference, strict=True)):
        return
    if all(bool((g == 0).all()) for g in got):
        fail(name, f"every estimate is 0 on input ({case.label}). The score-function "
                   "estimator multiplies f(z) by the gradient of log q(z); it never "
                   "differentiates f (a step function has derivative 0).")
    for what, g, e, r in zip(outputs, got, exact, reference, strict=True):
        if not _sample_means_agree(g, e, r):
            hint = ""
            for mistake in _SF_MISTAKES:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(1)
                    wrong = mistake.fn(*case.args)
                if all(_sample_means_agree(gg, ww.mean(0), ww)
                       for gg, ww in zip(got, wrong, strict=True)):
                    hint = mistake.hint
                    break
            fail(name, f"the mean of your {what} over {g.shape[0]:,} samples is "
                       f"{[round(v, 3) for v in g.mean(0).tolist()]} on input ({case.label}); "
                       f"the exact gradient is {[round(v, 3) for v in e.tolist()]}: the "
                       "estimator is biased." + (f"\nHint: {hint}" if hint else ""))
