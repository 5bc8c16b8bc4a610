"""The checks of notebook 06 accept correct answers and name plausible mistakes."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import beta_vae, check, metrics
from course_utils.checks import ExerciseNotStarted, exercises
from course_utils.checks.core import assert_fails, assert_passes
from course_utils.vae import bernoulli_log_likelihood, gaussian_kl


def test_registered_for_notebook_06():
    names = [e.name for e in exercises("06_beta_vae")]
    assert names == ["beta_vae_loss", "capacity_loss", "mutual_information_gap"]


@pytest.mark.parametrize("name", ["beta_vae_loss", "capacity_loss", "mutual_information_gap"])
def test_unstarted_exercise(name):
    def unstarted(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted, match="not implemented yet"):
        getattr(check, name)(unstarted)


# --------------------------------------------------------------------------- beta_vae_loss


def _parts(x, x_logits, mu, logvar):
    rec = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(-1)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    return rec, kl


def _beta(loss_fn=None, rec_fn=None, kl_fn=None):
    """A beta_vae_loss built from possibly wrong pieces."""
    def fn(x, x_logits, mu, logvar, beta):
        rec, kl = _parts(x, x_logits, mu, logvar)
        rec = rec_fn(x, x_logits) if rec_fn else rec.mean()
        kl = kl_fn(mu, logvar) if kl_fn else kl.mean()
        loss = loss_fn(rec, kl, beta) if loss_fn else rec + beta * kl
        return {"loss": loss, "rec": rec, "kl": kl}

    return fn


def test_beta_vae_loss_accepts_correct_answers():
    assert_passes(check.beta_vae_loss, beta_vae.beta_vae_loss)
    assert_passes(check.beta_vae_loss, _beta())  # from binary_cross_entropy_with_logits

    def with_references(x, x_logits, mu, logvar, beta):  # the notebook-04 pieces, per image
        rec = -bernoulli_log_likelihood(x, x_logits)
        kl = gaussian_kl(mu, logvar)
        return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}

    assert_passes(check.beta_vae_loss, with_references)


def test_beta_vae_loss_names_mistakes():
    assert_fails(check.beta_vae_loss, _beta(lambda r, k, b: b * r + k), 'out["loss"]',
                 "β weights the KL term, not the reconstruction")
    assert_fails(check.beta_vae_loss, _beta(lambda r, k, b: b * (r + k)),
                 "reconstruction term keeps weight 1")
    assert_fails(check.beta_vae_loss, _beta(lambda r, k, b: r + k), "β is ignored")
    assert_fails(check.beta_vae_loss, _beta(lambda r, k, b: r - b * k), "not subtracted")
    assert_fails(check.beta_vae_loss, _beta(lambda r, k, b: r + k / b), "divides the KL by β")
    assert_fails(check.beta_vae_loss,
                 _beta(rec_fn=lambda x, l: F.binary_cross_entropy_with_logits(l, x)),
                 'out["rec"]', "averaged over pixels")
    assert_fails(check.beta_vae_loss,
                 _beta(rec_fn=lambda x, l: _parts(x, l, l, l)[0].sum()), "average over the batch")
    assert_fails(check.beta_vae_loss,
                 _beta(rec_fn=lambda x, l: -_parts(x, l, l, l)[0].mean()), "check its sign")
    assert_fails(check.beta_vae_loss,
                 _beta(rec_fn=lambda x, l: _parts(x, torch.sigmoid(l), l, l)[0].mean()),
                 "logits, not probabilities")
    assert_fails(check.beta_vae_loss,
                 _beta(kl_fn=lambda mu, lv: _parts(mu, mu, mu, lv)[1].mean() / mu.shape[-1]),
                 'out["kl"]', "averaged over latent dimensions")


def test_beta_vae_loss_structure_messages():
    assert_fails(check.beta_vae_loss, lambda x, l, mu, lv, beta: _beta()(x, l, mu, lv, beta)[
        "loss"], "returned a Tensor", "return a dict")
    assert_fails(check.beta_vae_loss,
                 lambda x, l, mu, lv, beta: {"loss": _beta()(x, l, mu, lv, beta)["loss"]},
                 "lacks the key(s) ['rec', 'kl']")

    def per_image(x, x_logits, mu, logvar, beta):
        rec, kl = _parts(x, x_logits, mu, logvar)
        return {"loss": rec + beta * kl, "rec": rec, "kl": kl}

    assert_fails(check.beta_vae_loss, per_image, "has shape", "mean over the batch")


# --------------------------------------------------------------------------- capacity_loss


def _capacity(loss_fn=None):
    def fn(x, x_logits, mu, logvar, gamma, capacity):
        rec, kl = (p.mean() for p in _parts(x, x_logits, mu, logvar))
        loss = loss_fn(rec, kl, gamma, capacity) if loss_fn else rec + gamma * (kl - capacity).abs()
        return {"loss": loss, "rec": rec, "kl": kl}

    return fn


def test_capacity_loss_accepts_correct_answers():
    assert_passes(check.capacity_loss, beta_vae.capacity_loss)
    assert_passes(check.capacity_loss, _capacity())
    assert_passes(check.capacity_loss, _capacity(
        lambda r, k, g, c: r + g * torch.maximum(k - c, c - k)))


def test_capacity_loss_names_mistakes():
    assert_fails(check.capacity_loss, _capacity(lambda r, k, g, c: r + g * (k - c)),
                 'out["loss"]', "absolute value |kl - C|, not kl - C")
    assert_fails(check.capacity_loss, _capacity(lambda r, k, g, c: r + g * (k - c) ** 2),
                 "not a square")
    assert_fails(check.capacity_loss, _capacity(lambda r, k, g, c: r + g * k.abs() - c),
                 "inside the absolute value")
    assert_fails(check.capacity_loss, _capacity(lambda r, k, g, c: g * r + (k - c).abs()),
                 "γ weights the KL penalty")
    assert_fails(check.capacity_loss, _capacity(lambda r, k, g, c: r + (k - c).abs()),
                 "γ is ignored")

    def per_image(x, x_logits, mu, logvar, gamma, capacity):
        rec, kl = _parts(x, x_logits, mu, logvar)
        loss = (rec + gamma * (kl - capacity).abs()).mean()
        return {"loss": loss, "rec": rec.mean(), "kl": kl.mean()}

    assert_fails(check.capacity_loss, per_image, "batch-mean KL minus C")

    def beta_loss(x, x_logits, mu, logvar, gamma, capacity):  # forgot the capacity altogether
        return beta_vae.beta_vae_loss(x, x_logits, mu, logvar, gamma)

    assert_fails(check.capacity_loss, beta_loss, '`out["loss"]` differs', "target C is missing")


# --------------------------------------------------------------------------- MIG


def _mig(gap_fn):
    def fn(mi, entropy):
        top = mi.sort(dim=0, descending=True).values
        return gap_fn(top, mi, entropy)

    return fn


def test_mig_accepts_correct_answers():
    assert_passes(check.mutual_information_gap, metrics.mutual_information_gap)
    assert_passes(check.mutual_information_gap, _mig(lambda top, mi, h: ((top[0] - top[1]) / h)
                                                     .mean()))

    def ascending(mi, entropy):
        s = mi.sort(dim=0).values
        return torch.mean((s[-1] - s[-2]) / entropy)

    assert_passes(check.mutual_information_gap, ascending)


def test_mig_names_mistakes():
    assert_fails(check.mutual_information_gap, _mig(lambda top, mi, h: (top[0] - top[1]).mean()),
                 "divide each factor's gap by that factor's entropy")
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: ((top[0] - top[-1]) / h).mean()),
                 "largest and the second-largest", "not between the largest and the smallest")
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: ((top[1] - top[0]) / h).mean()), "decreasing order")
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: ((top[0] - top[1]) / top[0]).mean()),
                 "not by the largest mutual information")

    def wrong_axis(mi, entropy):
        top = mi.sort(dim=1, descending=True).values
        return ((top[:, 0] - top[:, 1]) / entropy).mean()

    assert_fails(check.mutual_information_gap, wrong_axis, "compare the codes (dim 0)")
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: ((top[0] - top[1]) / h).sum()), "average the normalised")
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: ((top[0] - top[1:].mean(0)) / h).mean()),
                 "mean of the others")


def test_mig_type_messages():
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: ((top[0] - top[1]) / h).mean().item()),
                 "Python float", "torch tensor")
    assert_fails(check.mutual_information_gap,
                 _mig(lambda top, mi, h: (top[0] - top[1]) / h), "has shape", "expected ()")
