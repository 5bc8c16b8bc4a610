"""The checks of notebook 08 accept correct answers and name the classic mistakes."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import check, ssvae
from course_utils.checks import ExerciseNotStarted
from course_utils.checks.core import assert_fails, assert_passes

# --------------------------------------------------------------------------- labeled_loss


def _labeled(model, x, y, alpha, elbo_sign=-1.0, alpha_on_ce=True, ce=None):
    logits = model.classify(x)
    ce = F.cross_entropy(logits, y, reduction="none") if ce is None else ce(logits, y)
    return elbo_sign * model.elbo(x, y) + (alpha if alpha_on_ce else 1.0) * ce


def test_labeled_loss_reference_and_alternatives_pass():
    assert_passes(check.labeled_loss, ssvae.labeled_loss)

    def with_gather(model, x, y, alpha):
        log_q = torch.log_softmax(model.classify(x), dim=1)
        return -model.elbo(x, y) - alpha * log_q.gather(1, y.unsqueeze(1)).squeeze(1)

    def with_distributions(model, x, y, alpha):
        q = torch.distributions.Categorical(logits=model.classify(x))
        return -(model.elbo(x, y) + alpha * q.log_prob(y))

    assert_passes(check.labeled_loss, with_gather)
    assert_passes(check.labeled_loss, with_distributions)


def test_labeled_loss_without_alpha():
    assert_fails(check.labeled_loss, lambda m, x, y, a: _labeled(m, x, y, a, alpha_on_ce=False),
                 "differs", "not weighted by alpha")


def test_labeled_loss_adds_the_elbo():
    assert_fails(check.labeled_loss, lambda m, x, y, a: _labeled(m, x, y, a, elbo_sign=1.0),
                 "differs", "negative ELBO")


def test_labeled_loss_alpha_on_the_elbo():
    assert_fails(check.labeled_loss,
                 lambda m, x, y, a: -a * m.elbo(x, y) + F.cross_entropy(m.classify(x), y,
                                                                        reduction="none"),
                 "differs", "not the ELBO")


def test_labeled_loss_softmax_before_cross_entropy():
    def double_softmax(logits, y):
        return F.cross_entropy(logits.softmax(-1), y, reduction="none")

    assert_fails(check.labeled_loss, lambda m, x, y, a: _labeled(m, x, y, a, ce=double_softmax),
                 "differs", "expects logits")


def test_labeled_loss_probability_not_log_probability():
    def minus_q(logits, y):
        return -logits.softmax(-1)[torch.arange(len(y)), y]

    assert_fails(check.labeled_loss, lambda m, x, y, a: _labeled(m, x, y, a, ce=minus_q),
                 "differs", "not -q(y|x)")


def test_labeled_loss_batch_mean():
    assert_fails(check.labeled_loss, lambda m, x, y, a: _labeled(m, x, y, a).mean(), "shape ()",
                 "one value per example")


def test_labeled_loss_unstarted():
    def labeled_loss(model, x, y, alpha):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.labeled_loss(labeled_loss)


# --------------------------------------------------------------------------- unlabeled_loss


def _enumerated(model, x):
    """-ELBO(x, y) for every y by a loop over classes, as a student would write it: (B, K)."""
    return torch.stack([-model.elbo(x, torch.full((len(x),), k, dtype=torch.long))
                        for k in range(model.num_classes)], dim=1)


def _unlabeled(model, x, weights="q", entropy=-1.0, naive=False):
    logits = model.classify(x)
    log_q = logits.softmax(-1).log() if naive else logits.log_softmax(-1)
    q = logits.softmax(-1)
    w = {"q": q, "ones": torch.ones_like(q), "logits": logits}[weights]
    return (w * _enumerated(model, x)).sum(1) + entropy * -(q * log_q).sum(1)


def test_unlabeled_loss_reference_and_alternatives_pass():
    assert_passes(check.unlabeled_loss, ssvae.unlabeled_loss)
    assert_passes(check.unlabeled_loss, _unlabeled)

    def kl_form(model, x):
        # Σ q (-ELBO) - H(q) = Σ q (-ELBO + log q): one term per class
        log_q = model.classify(x).log_softmax(-1)
        return (log_q.exp() * (_enumerated(model, x) + log_q)).sum(1)

    assert_passes(check.unlabeled_loss, kl_form)


def test_unlabeled_loss_entropy_missing():
    assert_fails(check.unlabeled_loss, lambda m, x: _unlabeled(m, x, entropy=0.0), "differs",
                 "entropy term is missing")


def test_unlabeled_loss_entropy_sign():
    assert_fails(check.unlabeled_loss, lambda m, x: _unlabeled(m, x, entropy=1.0), "differs",
                 "is subtracted")


def test_unlabeled_loss_elbos_not_weighted_by_q():
    assert_fails(check.unlabeled_loss, lambda m, x: _unlabeled(m, x, weights="ones"), "differs",
                 "weight each -ELBO(x, y) by q(y|x)")
    assert_fails(check.unlabeled_loss, lambda m, x: _unlabeled(m, x, weights="logits"),
                 "differs", "not by the logits")


def test_unlabeled_loss_classification_loss_on_unlabeled_data():
    def pseudo_label(model, x):
        logits = model.classify(x)
        ce = F.cross_entropy(logits, logits.argmax(1), reduction="none")
        return _unlabeled(model, x) + ce

    def predicted_class_as_label(model, x):
        y_hat = model.classify(x).argmax(1)
        return -model.elbo(x, y_hat)

    assert_fails(check.unlabeled_loss, pseudo_label, "differs", "no classification loss")
    assert_fails(check.unlabeled_loss, predicted_class_as_label, "differs",
                 "no label for unlabeled data")


def test_unlabeled_loss_naive_log_of_softmax():
    assert_fails(check.unlabeled_loss, lambda m, x: _unlabeled(m, x, naive=True), "nan",
                 "F.log_softmax")


def test_unlabeled_loss_softmax_over_the_batch():
    def over_batch(model, x):
        log_q = model.classify(x).log_softmax(0)
        q = log_q.exp()
        return (q * _enumerated(model, x)).sum(1) + (q * log_q).sum(1)

    assert_fails(check.unlabeled_loss, over_batch, "differs", "over the classes")


def test_unlabeled_loss_unstarted():
    def unlabeled_loss(model, x):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.unlabeled_loss(unlabeled_loss)
