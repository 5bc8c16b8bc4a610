"""Checks for notebook 08 (semi-supervised VAE, M2): labeled_loss and unlabeled_loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import ssvae
from .core import Case, Mistake, compare, exercise, private_generator

NOTEBOOK = "08_semi_supervised_vae"
_X_DIM, _K = 12, 4


def _check_m2(seed: int, confident: bool = False) -> ssvae.M2:
    """A small float64 M2 whose q(z|x,y) is nearly a point (std ~ e^-15), so ELBOs are exact.

    confident=True scales the classifier's output so that q(y|x) is nearly one-hot.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ssvae.M2(_X_DIM, num_classes=_K, z_dim=3, hidden_dims=(16,)).double()
    with torch.no_grad():
        model.encoder.net[-1].bias[model.z_dim:] -= 30.0  # logvar ~ -30: z ≈ mu
        if confident:
            model.classifier[-1].weight.mul_(1e4)  # logit gaps of ~1000: exp underflows to 0
            model.classifier[-1].bias.mul_(1e4)
    return model


def _x(g: torch.Generator, b: int, binary: bool = False) -> torch.Tensor:
    x = torch.rand(b, _X_DIM, generator=g, dtype=torch.float64)
    return x.round() if binary else x


def _elbos(model, x) -> torch.Tensor:
    """ELBO(x, y) for every y, one class at a time: (B, K)."""
    return torch.stack([model.elbo(x, torch.full((len(x),), k)) for k in range(_K)], dim=1)


# --------------------------------------------------------------------------- labeled_loss

_LABELED_ARGS = ("model", "x", "y", "alpha")


def _labeled_variant(elbo_weight=-1.0, alpha_on_ce=True, ce=None):
    def fn(model, x, y, alpha):
        logits = model.classify(x)
        term = F.cross_entropy(logits, y, reduction="none") if ce is None else ce(logits, y)
        return elbo_weight * model.elbo(x, y) + (alpha if alpha_on_ce else 1.0) * term
    return fn


def _alpha_on_elbo(model, x, y, alpha):
    return -alpha * model.elbo(x, y) + F.cross_entropy(model.classify(x), y, reduction="none")


_LABELED_MISTAKES = [
    Mistake("the cross-entropy term is not weighted by alpha; alpha is the weight of the "
            "classification term.", _labeled_variant(alpha_on_ce=False)),
    Mistake("alpha weights the classification term, not the ELBO.", _alpha_on_elbo),
    Mistake("L(x, y) is the negative ELBO, a loss to minimise; your term has the ELBO's "
            "sign.", _labeled_variant(elbo_weight=1.0)),
    Mistake("the -ELBO term is missing: the labeled loss trains the VAE as well as the "
            "classifier.", _labeled_variant(elbo_weight=0.0)),
    Mistake("F.cross_entropy expects logits (it applies log_softmax itself); you gave it "
            "probabilities.",
            _labeled_variant(ce=lambda lg, y: F.cross_entropy(lg.softmax(-1), y,
                                                              reduction="none"))),
    Mistake("the classification loss is -log q(y|x) (a log-probability), not -q(y|x).",
            _labeled_variant(ce=lambda lg, y: -lg.softmax(-1).gather(1, y[:, None]).squeeze(1))),
    Mistake("F.cross_entropy averages over the batch by default: with reduction='none' it "
            "gives one value per example, to add to each example's -ELBO.",
            _labeled_variant(ce=lambda lg, y: F.cross_entropy(lg, y).expand(len(y)))),
    Mistake("return one value per example, shape (B,): the training loop takes the mean "
            "(use reduction='none' in F.cross_entropy).",
            lambda model, x, y, alpha: ssvae.labeled_loss(model, x, y, alpha).mean()),
]


def _labeled_cases() -> list[Case]:
    g = private_generator("labeled_loss")
    cases = []
    for seed, b, alpha, binary in ((0, 5, 5.0, False), (1, 1, 50.0, True), (2, 7, 0.3, False)):
        y = torch.randint(0, _K, (b,), generator=g)
        label = (f"an M2 with {_K} classes; x: ({b}, {_X_DIM}) in [0, 1]; y: {y.tolist()}; "
                 f"alpha={alpha}")
        cases.append(Case((_check_m2(seed), _x(g, b, binary), y, alpha), label=label))
    return cases


@exercise(NOTEBOOK, hints=(
    "Two terms per example: the negative bound -ELBO(x, y) and α times the classifier's cross-"
    "entropy on the true label.",
    'model.elbo(x, y) is the bound; F.cross_entropy(model.classify(x), y, reduction="none") keeps '
    "one value per example.",
))
def labeled_loss(student_fn):
    """Check ``labeled_loss(model, x, y, alpha) -> (B,)`` against the reference (eq. 9)."""
    compare("labeled_loss", student_fn, ssvae.labeled_loss, _labeled_cases(),
            arg_names=_LABELED_ARGS, mistakes=_LABELED_MISTAKES, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- unlabeled_loss


def _q_parts(model, x, dim=-1):
    logits = model.classify(x)
    return logits, F.log_softmax(logits, dim=dim), F.softmax(logits, dim=dim)


def _unlabeled_variant(weights="q", entropy_sign=-1.0, dim=-1, naive_log=False,
                       entropy_of_logits=False):
    def fn(model, x):
        logits, log_q, q = _q_parts(model, x, dim)
        if naive_log:
            log_q = q.log()
        neg_elbo = -_elbos(model, x)
        w = {"q": q, "none": torch.ones_like(q), "mean": torch.full_like(q, 1 / _K),
             "logits": logits}[weights]
        entropy = -(q * (logits if entropy_of_logits else log_q)).sum(-1)
        return (w * neg_elbo).sum(-1) + entropy_sign * entropy
    return fn


def _hard_label(model, x):
    y_hat = model.classify(x).argmax(-1)
    return -model.elbo(x, y_hat)


def _pseudo_label_ce(model, x):
    logits = model.classify(x)
    return ssvae.unlabeled_loss(model, x) + F.cross_entropy(logits, logits.argmax(-1),
                                                            reduction="none")


_UNLABELED_MISTAKES = [
    Mistake("the entropy term is missing: U(x) = Σ_y q(y|x)·(-ELBO(x,y)) - H(q(y|x)).",
            _unlabeled_variant(entropy_sign=0.0)),
    Mistake("the entropy H(q(y|x)) is subtracted (it rewards an uncertain q), not added.",
            _unlabeled_variant(entropy_sign=1.0)),
    Mistake("weight each -ELBO(x, y) by q(y|x): it is an expectation over q, not a plain sum.",
            _unlabeled_variant(weights="none")),
    Mistake("weight each -ELBO(x, y) by q(y|x), not by 1/K: the expectation is under the "
            "classifier q(y|x).", _unlabeled_variant(weights="mean")),
    Mistake("weight by the probabilities q(y|x) = softmax(logits), not by the logits.",
            _unlabeled_variant(weights="logits")),
    Mistake("q(y|x) is a softmax over the classes (dim=-1), not over the batch.",
            _unlabeled_variant(dim=0)),
    Mistake("there is no label for unlabeled data: sum over every y weighted by q(y|x) instead "
            "of using the predicted class.", _hard_label),
    Mistake("there is no classification loss on unlabeled data: a cross-entropy against the "
            "predicted class only makes q more confident. Keep Σ_y q·(-ELBO) - H(q).",
            _pseudo_label_ce),
    Mistake("the entropy is -Σ q log q with the log-probabilities log q = log_softmax(logits), "
            "not the raw logits.", _unlabeled_variant(entropy_of_logits=True)),
    Mistake("q·log q gives nan when q underflows to 0: take log q from F.log_softmax(logits).",
            _unlabeled_variant(naive_log=True)),
]


def _unlabeled_cases() -> list[Case]:
    g = private_generator("unlabeled_loss")
    cases = [
        Case((_check_m2(0), _x(g, 5)), label=f"an M2 with {_K} classes; x: (5, {_X_DIM})"),
        Case((_check_m2(1), _x(g, 1, binary=True)),
             label=f"an M2 with {_K} classes; x: (1, {_X_DIM}) binary"),
        Case((_check_m2(2), _x(g, 6)), label=f"an M2 with {_K} classes; x: (6, {_X_DIM})"),
        Case((_check_m2(3, confident=True), _x(g, 4)),
             label=f"an M2 whose q(y|x) is nearly one-hot (huge logits); x: (4, {_X_DIM})"),
    ]
    return cases


@exercise(NOTEBOOK, hints=(
    "y is unknown: average -ELBO(x, y) over every class y, weighted by q(y | x), and subtract the "
    "entropy of q(y | x).",
    "Build a (B, K) table of -ELBO(x, k) for each class k (torch.full for the labels), take q from"
    " a log_softmax of the classifier's logits, and reduce over k.",
))
def unlabeled_loss(student_fn):
    """Check ``unlabeled_loss(model, x) -> (B,)`` (eq. 7, y enumerated) against the reference."""
    compare("unlabeled_loss", student_fn, ssvae.unlabeled_loss, _unlabeled_cases(),
            arg_names=("model", "x"), mistakes=_UNLABELED_MISTAKES, rtol=1e-5, atol=1e-4)
