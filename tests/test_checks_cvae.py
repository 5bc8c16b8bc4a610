"""The checks of notebook 07 accept correct answers and name the classic mistakes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import check, cvae
from course_utils.checks import ExerciseNotStarted
from course_utils.checks.core import assert_fails, assert_passes
from course_utils.vae import bernoulli_log_likelihood, gaussian_kl

# --------------------------------------------------------------------------- one_hot


def test_one_hot_reference_and_alternatives_pass():
    assert_passes(check.one_hot, cvae.one_hot)
    assert_passes(check.one_hot, lambda y, num_classes: torch.eye(num_classes)[y])
    assert_passes(check.one_hot, lambda y, num_classes: F.one_hot(y.long(), num_classes).float())


def test_one_hot_integer_dtype():
    assert_fails(check.one_hot, lambda y, k: F.one_hot(y.long(), k), "dtype torch.int64",
                 "float32")


def test_one_hot_transposed():
    assert_fails(check.one_hot, lambda y, k: torch.eye(k)[y].T, "shape", "(B, num_classes)")


def test_one_hot_width_from_the_batch():
    assert_fails(check.one_hot, lambda y, k: torch.eye(int(y.max()) + 1)[y], "shape",
                 "not the largest label")


def test_one_hot_sets_whole_columns():
    def columns(y, k):
        out = torch.zeros(len(y), k)
        out[:, y] = 1.0
        return out

    assert_fails(check.one_hot, columns, "differs", "single 1")


def test_one_hot_off_by_one():
    assert_fails(check.one_hot, lambda y, k: torch.eye(k)[(y + 1) % k], "differs",
                 "counting from 0")


def test_one_hot_unstarted():
    def one_hot(y, num_classes):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.one_hot(one_hot)


# --------------------------------------------------------------------------- conditional_elbo


def _by_hand(model, x, y):
    c = torch.eye(model.num_classes, dtype=x.dtype)[y]
    mu, logvar = model.encode(x, c)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = model.decode(z, c)
    rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    return rec - kl


def _with_course_utils(model, x, y):
    c = cvae.one_hot(y, model.num_classes)
    mu, logvar = model.encode(x, c)
    z = model.reparameterize(mu, logvar)
    return bernoulli_log_likelihood(x, model.decode(z, c)) - gaussian_kl(mu, logvar)


def test_conditional_elbo_reference_and_alternatives_pass():
    assert_passes(check.conditional_elbo, cvae.conditional_elbo)
    assert_passes(check.conditional_elbo, _by_hand)
    assert_passes(check.conditional_elbo, _with_course_utils)


def test_conditional_elbo_label_missing_in_the_decoder():
    def no_label(model, x, y):
        c = cvae.one_hot(y, model.num_classes)
        mu, logvar = model.encode(x, c)
        z = model.reparameterize(mu, logvar)
        logits = model.decode(z, torch.zeros_like(c))
        return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)

    assert_fails(check.conditional_elbo, no_label, "differs", "decoder must see the label")


def test_conditional_elbo_returns_the_loss():
    assert_fails(check.conditional_elbo, lambda m, x, y: -_by_hand(m, x, y), "differs",
                 "negative ELBO")


def test_conditional_elbo_kl_sign_and_missing_kl():
    def plus_kl(model, x, y):
        c = cvae.one_hot(y, model.num_classes)
        mu, logvar = model.encode(x, c)
        z = model.reparameterize(mu, logvar)
        return bernoulli_log_likelihood(x, model.decode(z, c)) + gaussian_kl(mu, logvar)

    def no_kl(model, x, y):
        c = cvae.one_hot(y, model.num_classes)
        mu, logvar = model.encode(x, c)
        return bernoulli_log_likelihood(x, model.decode(model.reparameterize(mu, logvar), c))

    assert_fails(check.conditional_elbo, plus_kl, "subtracted")
    assert_fails(check.conditional_elbo, no_kl, "KL(q(z|x,y) || p(z)) term is missing")


def test_conditional_elbo_batch_mean():
    assert_fails(check.conditional_elbo, lambda m, x, y: _by_hand(m, x, y).mean(), "shape ()",
                 "one ELBO per example")


def test_conditional_elbo_uses_the_mean_instead_of_a_sample():
    def mean_z(model, x, y):
        c = cvae.one_hot(y, model.num_classes)
        mu, logvar = model.encode(x, c)
        return bernoulli_log_likelihood(x, model.decode(mu, c)) - gaussian_kl(mu, logvar)

    assert_fails(check.conditional_elbo, mean_z, "does not change with the noise",
                 "model.reparameterize")


def test_conditional_elbo_unstarted():
    def conditional_elbo(model, x, y):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.conditional_elbo(conditional_elbo)


# --------------------------------------------------------------------------- random_mask


def _loop_mask(batch_size, image_shape, size):
    h, w = image_shape
    masks = torch.ones(batch_size, h, w)
    for i in range(batch_size):
        top = int(torch.randint(0, h - size + 1, ()))
        left = int(torch.randint(0, w - size + 1, ()))
        masks[i, top:top + size, left:left + size] = 0.0
    return masks.reshape(batch_size, h * w)


def test_random_mask_reference_and_alternative_pass():
    assert_passes(check.random_mask, cvae.random_mask)
    assert_passes(check.random_mask, _loop_mask)


def test_random_mask_inverted():
    assert_fails(check.random_mask, lambda b, s, k: 1 - cvae.random_mask(b, s, k), "inverted",
                 "1 for the pixels the encoder sees")


def test_random_mask_same_square_for_the_batch():
    def same(batch_size, image_shape, size):
        return _loop_mask(1, image_shape, size).expand(batch_size, -1).clone()

    assert_fails(check.random_mask, same, "same square", "each image")


def test_random_mask_never_reaches_the_edge():
    def exclusive(batch_size, image_shape, size):
        h, w = image_shape
        masks = torch.ones(batch_size, h, w)
        for i in range(batch_size):
            top = int(torch.randint(0, h - size, ()))
            left = int(torch.randint(0, w - size, ()))
            masks[i, top:top + size, left:left + size] = 0.0
        return masks.reshape(batch_size, h * w)

    assert_fails(check.random_mask, exclusive, "bottom edge", "excludes `high`")


def test_random_mask_numpy_randomness():
    rng = np.random.default_rng()

    def numpy_mask(batch_size, image_shape, size):
        h, w = image_shape
        masks = torch.ones(batch_size, h, w)
        for i in range(batch_size):
            top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            masks[i, top:top + size, left:left + size] = 0.0
        return masks.reshape(batch_size, h * w)

    assert_fails(check.random_mask, numpy_mask, "same torch.manual_seed", "torch.randint")


def test_random_mask_wrap_around_and_shape():
    def wrapped(batch_size, image_shape, size):
        h, w = image_shape
        masks = torch.ones(batch_size, h, w)
        rows = (torch.randint(0, h, (batch_size, 1)) + torch.arange(size)) % h
        cols = (torch.randint(0, w, (batch_size, 1)) + torch.arange(size)) % w
        for i in range(batch_size):
            masks[i, rows[i][:, None], cols[i][None, :]] = 0.0
        return masks.reshape(batch_size, h * w)

    assert_fails(check.random_mask, wrapped, "do not form one", "no wrap-around")
    assert_fails(check.random_mask,
                 lambda b, s, k: cvae.random_mask(b, s, k).reshape(b, *s), "flatten each mask")


def test_random_mask_boolean_masks():
    assert_fails(check.random_mask, lambda b, s, k: cvae.random_mask(b, s, k).bool(),
                 "dtype torch.bool", "float32")


def test_random_mask_unstarted():
    def random_mask(batch_size, image_shape, size):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.random_mask(random_mask)


# --------------------------------------------------------------------------- inpaint


def test_inpaint_reference_and_alternative_pass():
    assert_passes(check.inpaint, cvae.inpaint)

    def with_where(model, x, mask):
        mu, _ = model.encode(x * mask, mask)
        return torch.where(mask.bool(), x, model.decode(mu).sigmoid())

    assert_passes(check.inpaint, with_where)


def _fill(model, x, mask, fill_mask=None, sigmoid=True, keep=True):
    mu, _ = model.encode(x, mask if fill_mask is None else fill_mask)
    out = model.decode(mu)
    out = out.sigmoid() if sigmoid else out
    return mask * x + (1 - mask) * out if keep else out


def test_inpaint_mistakes():
    assert_fails(check.inpaint, lambda m, x, k: _fill(m, x, k, keep=False), "differs",
                 "keep the observed pixels")
    assert_fails(check.inpaint, lambda m, x, k: _fill(m, x, k, sigmoid=False), "differs",
                 "torch.sigmoid")
    assert_fails(check.inpaint, lambda m, x, k: _fill(m, x, k, torch.ones_like(k)), "differs",
                 "cheating")
    assert_fails(check.inpaint, lambda m, x, k: (1 - k) * x + k * _fill(m, x, k, keep=False),
                 "differs", "swapped")


def test_inpaint_samples_instead_of_the_mean():
    def sampled(model, x, mask):
        mu, logvar = model.encode(x, mask)
        return mask * x + (1 - mask) * model.decode(model.reparameterize(mu, logvar)).sigmoid()

    assert_fails(check.inpaint, sampled, "differs", "mean of q(z|x ⊙ m)")


def test_inpaint_unstarted():
    def inpaint(model, x, mask):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.inpaint(inpaint)
