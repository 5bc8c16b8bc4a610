"""Checks for notebook 06 (β-VAE and disentanglement): the two losses and the MIG.

``beta_vae_loss`` and ``capacity_loss`` return dicts of batch means; each part is compared
with the reference (rec, then kl, then loss, so a message points at the first wrong part)
on random and edge inputs, with a bank of known mistakes. ``mutual_information_gap`` is
compared on mutual-information matrices with ties, zeros and one or many factors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import beta_vae, metrics, vae
from .core import (
    Case,
    Mistake,
    _as_parts,
    call_student,
    check_gradients,
    compare,
    compare_output,
    exercise,
    fail,
    passed,
    private_generator,
    randn,
)

NOTEBOOK = "06_beta_vae"
_PARTS = ("loss", "rec", "kl")
_ARGS = ("x", "x_logits", "mu", "logvar")


def _rec(x, logits):  # (B,): -log p(x|z) per image
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _kl(mu, logvar):  # (B,): KL per image, summed over the latent dimensions
    return vae.gaussian_kl(mu, logvar)


def _loss_case(g, batch, x_dim, z_dim, dtype=torch.float64, logit_scale=3.0, z_scale=1.0,
               binary=False, **kwargs) -> Case:
    x = torch.rand(batch, x_dim, generator=g, dtype=dtype)
    x = torch.bernoulli(x, generator=g) if binary else x
    return Case((x, randn(g, batch, x_dim, scale=logit_scale, dtype=dtype),
                 randn(g, batch, z_dim, scale=z_scale, dtype=dtype),
                 randn(g, batch, z_dim, scale=z_scale, dtype=dtype)), kwargs)


def _check_parts(name: str, student_fn, reference_fn, cases, mistakes: dict) -> None:
    """Compare a dict of scalar parts with the reference, part by part (rec, kl, then loss)."""
    for i, case in enumerate(cases):
        out = call_student(name, student_fn, case, _ARGS)
        if not isinstance(out, dict):
            fail(name, f"your function returned a {type(out).__name__}; return a dict "
                       '{"loss": ..., "rec": ..., "kl": ...}.')
        missing = [k for k in _PARTS if k not in out]
        if missing:
            fail(name, f"your dict lacks the key(s) {missing}; it has {list(out)}.")
        expected = reference_fn(*case.args, **case.kwargs)
        for key in ("rec", "kl", "loss"):
            got = out[key]
            if isinstance(got, torch.Tensor) and got.ndim != 0:
                fail(name, f'out["{key}"] has shape {tuple(got.shape)}; each part is a '
                           "scalar: the mean over the batch.")
            compare_output(name, got, expected[key], case, arg_names=_ARGS,
                           output_names=(f'out["{key}"]',), mistakes=mistakes[key],
                           rtol=1e-5, atol=1e-4, position=f"{i + 1}/{len(cases)} ")
    check_gradients(name, _as_parts(student_fn, _PARTS), _as_parts(reference_fn, _PARTS),
                    cases[0], arg_names=_ARGS, output_names=[f'out["{k}"]' for k in _PARTS])
    passed(name, len(cases))


_BATCH_SUM = ("average over the batch, do not sum: a sum grows with the batch size (and "
              "changes the effective learning rate).")

_REC_MISTAKES = [
    Mistake(_BATCH_SUM, lambda x, l, mu, lv, *a, **k: _rec(x, l).sum()),
    Mistake('"rec" is the negative log-likelihood -log p(x|z), a positive number; check its '
            "sign.", lambda x, l, mu, lv, *a, **k: -_rec(x, l).mean()),
    Mistake("the reconstruction term is averaged over pixels (the default reduction of "
            "binary_cross_entropy_with_logits); sum over the pixels of an image, then average "
            "over the batch.",
            lambda x, l, mu, lv, *a, **k: F.binary_cross_entropy_with_logits(l, x)),
    Mistake("x_logits are logits, not probabilities: do not apply a sigmoid before a "
            "*_with_logits loss (or use the reference bernoulli_log_likelihood(x, x_logits)).",
            lambda x, l, mu, lv, *a, **k: _rec(x, torch.sigmoid(l)).mean()),
]

_KL_MISTAKES = [
    Mistake(_BATCH_SUM, lambda x, l, mu, lv, *a, **k: _kl(mu, lv).sum()),
    Mistake("the KL is averaged over latent dimensions; sum over them (gaussian_kl does), "
            "then average over the batch.",
            lambda x, l, mu, lv, *a, **k: (_kl(mu, lv) / mu.shape[-1]).mean()),
]


def _combined(combine):
    """A mistake in how rec and kl (batch means) are combined into the loss."""
    def wrong(x, logits, mu, logvar, *args, **kwargs):
        return combine(_rec(x, logits).mean(), _kl(mu, logvar).mean(), *args, **kwargs)

    return wrong


# --------------------------------------------------------------------------- beta_vae_loss

_BETA_MISTAKES = {
    "rec": _REC_MISTAKES,
    "kl": _KL_MISTAKES,
    "loss": [
        Mistake("β weights the KL term, not the reconstruction term.",
                _combined(lambda r, k, beta: beta * r + k)),
        Mistake("β multiplies only the KL term; the reconstruction term keeps weight 1.",
                _combined(lambda r, k, beta: beta * (r + k))),
        Mistake("β is ignored: the loss must change with beta (with β = 0 it is the "
                "reconstruction term alone).", _combined(lambda r, k, beta: r + k)),
        Mistake("the KL is added to the loss, not subtracted: loss = rec + β kl.",
                _combined(lambda r, k, beta: r - beta * k)),
        Mistake("this divides the KL by β; the β-VAE multiplies it by β.",
                _combined(lambda r, k, beta: r + k / beta)),
    ],
}


def _beta_cases() -> list[Case]:
    g = private_generator("beta_vae_loss")
    return [
        _loss_case(g, 6, 16, 3, beta=4.0),
        _loss_case(g, 5, 32, 4, dtype=torch.float32, binary=True, beta=0.0),
        _loss_case(g, 1, 10, 2, beta=8.0),  # batch size 1
        _loss_case(g, 4, 12, 5, logit_scale=25.0, z_scale=3.0, beta=0.5),  # large magnitudes
        _loss_case(g, 3, 8, 6, binary=True, beta=1.0),
    ]


def _reference_beta(x, x_logits, mu, logvar, beta):
    return beta_vae.beta_vae_loss(x, x_logits, mu, logvar, beta)


@exercise(NOTEBOOK, hints=(
    "The same as the VAE's negative ELBO, with the KL term weighted by β.",
    "Per example: rec = -bernoulli_log_likelihood, kl = gaussian_kl; return batch means, with loss"
    " = mean(rec + β · kl).",
))
def beta_vae_loss(student_fn):
    """Check {"loss": rec + β kl, "rec", "kl"} (batch means) for β in {0, 0.5, 1, 4, 8}."""
    _check_parts("beta_vae_loss", student_fn, _reference_beta, _beta_cases(), _BETA_MISTAKES)


# --------------------------------------------------------------------------- capacity_loss

_CAPACITY_MISTAKES = {
    "rec": _REC_MISTAKES,
    "kl": _KL_MISTAKES,
    "loss": [
        Mistake("a KL below the target C must be penalised too: use the absolute value "
                "|kl - C|, not kl - C.",
                _combined(lambda r, k, gamma, capacity: r + gamma * (k - capacity))),
        Mistake("the penalty is γ times an absolute value |kl - C|, not a square.",
                _combined(lambda r, k, gamma, capacity: r + gamma * (k - capacity) ** 2)),
        Mistake("C belongs inside the absolute value: |kl - C|, not |kl| - C.",
                _combined(lambda r, k, gamma, capacity: r + gamma * k.abs() - capacity)),
        Mistake("C belongs inside the absolute value: γ |kl - C|, not γ |kl| - γ C.",
                _combined(lambda r, k, gamma, capacity: r + gamma * (k.abs() - capacity))),
        Mistake("the target C is missing: penalise the distance of the KL from C, |kl - C|.",
                _combined(lambda r, k, gamma, capacity: r + gamma * k)),
        Mistake("γ weights the KL penalty, not the reconstruction term.",
                _combined(lambda r, k, gamma, capacity: gamma * r + (k - capacity).abs())),
        Mistake("γ is ignored: the penalty is γ |kl - C|.",
                _combined(lambda r, k, gamma, capacity: r + (k - capacity).abs())),
        Mistake("take the absolute value of the batch-mean KL minus C, as in Burgess et al.: "
                "here each image's |kl_i - C| is averaged instead.",
                lambda x, l, mu, lv, gamma, capacity: (
                    _rec(x, l) + gamma * (_kl(mu, lv) - capacity).abs()).mean()),
    ],
}


def _capacity_cases() -> list[Case]:
    g = private_generator("capacity_loss")
    return [
        _loss_case(g, 6, 16, 3, gamma=10.0, capacity=50.0),  # kl below C
        _loss_case(g, 5, 24, 4, dtype=torch.float32, binary=True, gamma=100.0, capacity=0.5),
        _loss_case(g, 8, 10, 2, z_scale=1.5, gamma=2.0, capacity=4.0),  # kl_i on both sides of C
        _loss_case(g, 1, 10, 3, gamma=1000.0, capacity=0.0),  # batch size 1, C = 0
        _loss_case(g, 4, 12, 5, logit_scale=25.0, z_scale=3.0, gamma=0.5, capacity=25.0),
    ]


def _reference_capacity(x, x_logits, mu, logvar, gamma, capacity):
    return beta_vae.capacity_loss(x, x_logits, mu, logvar, gamma, capacity)


@exercise(NOTEBOOK, hints=(
    "Burgess et al. pin the KL to a target C: the penalty is γ times the distance between the KL "
    "and C, not the KL itself.",
    "Take batch means of the reconstruction and of the KL first, then add γ · |KL - C|.",
))
def capacity_loss(student_fn):
    """Check {"loss": rec + γ |kl - C|, "rec", "kl"} (batch means), with kl above and below C."""
    _check_parts("capacity_loss", student_fn, _reference_capacity, _capacity_cases(),
                 _CAPACITY_MISTAKES)


# --------------------------------------------------------------------------- MIG


def _top2(mi, dim=0):
    return mi.topk(2, dim=dim).values


_MIG_MISTAKES = [
    Mistake("divide each factor's gap by that factor's entropy H(v_k), so that every gap "
            "lies in [0, 1] whatever the number of values of the factor.",
            lambda mi, h: (_top2(mi)[0] - _top2(mi)[1]).mean()),
    Mistake("normalise by the factor's entropy H(v_k), not by the largest mutual information.",
            lambda mi, h: ((_top2(mi)[0] - _top2(mi)[1]) / _top2(mi)[0]).mean()),
    Mistake("the gap is between the largest and the second-largest I(z_j; v_k) over the codes "
            "j, not between the largest and the smallest.",
            lambda mi, h: ((mi.amax(0) - mi.amin(0)) / h).mean()),
    Mistake("the gap is between the largest and the second-largest I(z_j; v_k), not between "
            "the largest and the mean of the others.",
            lambda mi, h: ((mi.amax(0) - (mi.sum(0) - mi.amax(0)) / (mi.shape[0] - 1)) / h)
            .mean()),
    Mistake("sort in decreasing order: the gap is largest minus second largest, so it is >= 0.",
            lambda mi, h: ((_top2(mi)[1] - _top2(mi)[0]) / h).mean()),
    Mistake("mi has shape (Z, K): for each factor (a column) compare the codes (dim 0), not "
            "for each code the factors (dim 1).",
            lambda mi, h: ((_top2(mi, 1)[:, 0] - _top2(mi, 1)[:, 1]) / h).mean()),
    Mistake("average the normalised gaps over the factors; a sum grows with the number of "
            "factors.", lambda mi, h: ((_top2(mi)[0] - _top2(mi)[1]) / h).sum()),
    Mistake("average the gaps over the factors, do not keep only the best one.",
            lambda mi, h: ((_top2(mi)[0] - _top2(mi)[1]) / h).max()),
]


def _mi_case(g, z_dim, k, dtype=torch.float64, copies=0) -> Case:
    """A mutual-information matrix (Z, K) in nats and factor entropies (K,) with mi <= H."""
    entropy = 0.5 + 3 * torch.rand(k, generator=g, dtype=dtype)
    mi = torch.rand(z_dim, k, generator=g, dtype=dtype) * 0.4 * entropy
    for j in range(min(copies, k, z_dim)):  # some codes capture a factor well
        mi[j, j] = entropy[j] * (0.6 + 0.4 * torch.rand((), generator=g, dtype=dtype))
    return Case((mi, entropy))


def _mig_cases() -> list[Case]:
    g = private_generator("mutual_information_gap")
    tie = torch.tensor([[0.5, 0.2], [0.5, 0.1], [0.0, 0.2]], dtype=torch.float64)
    return [
        _mi_case(g, 5, 5, copies=3),  # as many codes as factors (Z = K)
        _mi_case(g, 10, 5, copies=4),
        _mi_case(g, 4, 6, dtype=torch.float32, copies=2),
        _mi_case(g, 2, 1),  # two codes, one factor
        Case((tie, torch.tensor([1.0, 0.7], dtype=torch.float64))),  # ties: gaps of 0
        Case((torch.zeros(3, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))),
    ]


@exercise(NOTEBOOK, hints=(
    "For each factor (a column of mi), find how much more information the best code holds than the"
    " second best.",
    "mi.topk(2, dim=0) gives the best two per column; divide each gap by that factor's entropy and"
    " average over the factors.",
))
def mutual_information_gap(student_fn):
    """Check MIG = mean over factors of (top-1 - top-2 MI over codes) / H(factor)."""
    compare("mutual_information_gap", student_fn, metrics.mutual_information_gap, _mig_cases(),
            arg_names=("mi", "entropy"), mistakes=_MIG_MISTAKES, rtol=1e-5, atol=1e-6,
            gradients=False)
