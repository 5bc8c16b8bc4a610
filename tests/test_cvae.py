"""Conditional VAE and mask-aware inpainting: shapes, closed forms, validation, and training."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.linear_model import LogisticRegression
from torch.distributions import Bernoulli, Normal, kl_divergence

from course_utils import cvae, data
from course_utils.train import fit

# --------------------------------------------------------------------------- one_hot


def test_one_hot_matches_torch():
    y = torch.tensor([0, 3, 9, 3, 1])
    out = cvae.one_hot(y, 10)
    assert out.dtype == torch.float32 and out.shape == (5, 10)
    assert torch.equal(out, F.one_hot(y, 10).float())
    assert cvae.one_hot(y.int(), 10, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("y, k, error, match", [
    (torch.tensor([0.0, 1.0]), 3, TypeError, "integer class indices"),
    (torch.tensor([[0, 1]]), 3, ValueError, r"shape \(B,\)"),
    (torch.tensor([0, 3]), 3, ValueError, "0..2"),
    (torch.tensor([-1, 0]), 3, ValueError, "0..2"),
    ([0, 1], 3, TypeError, "torch.Tensor"),
    (torch.tensor([0, 1]), 0, ValueError, "num_classes"),
])
def test_one_hot_validates(y, k, error, match):
    with pytest.raises(error, match=match):
        cvae.one_hot(y, k)


def test_one_hot_rejects_integer_dtype():
    with pytest.raises(TypeError, match="floating-point"):
        cvae.one_hot(torch.tensor([0, 1]), 2, dtype=torch.int64)


# --------------------------------------------------------------------------- CVAE


@pytest.fixture
def model():
    torch.manual_seed(0)
    return cvae.CVAE(x_dim=12, num_classes=4, z_dim=3, hidden_dims=(16,)).double()


def test_cvae_shapes(model):
    x = torch.rand(5, 12, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    logits, mu, logvar = model(x, y)
    assert logits.shape == (5, 12) and mu.shape == logvar.shape == (5, 3)
    assert model.sample(y).shape == (5, 12)
    assert cvae.swap_labels(model, x, y).shape == (5, 4, 12)


def test_conditional_elbo_against_torch_distributions(model):
    x = torch.rand(6, 12, dtype=torch.float64).round()
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    torch.manual_seed(3)
    elbo = cvae.conditional_elbo(model, x, y)
    c = F.one_hot(y, 4).double()
    mu, logvar = model.encode(x, c)
    torch.manual_seed(3)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    rec = Bernoulli(logits=model.decode(z, c)).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(elbo, rec - kl)
    torch.manual_seed(3)
    loss = model.loss(x, y)
    torch.testing.assert_close(loss["loss"], -(rec - kl).mean())
    torch.testing.assert_close(loss["kl"], kl.mean())


def test_the_label_changes_the_decoder(model):
    z = torch.randn(3, 3, dtype=torch.float64)
    a = model.sample(torch.tensor([0, 0, 0]), z)
    b = model.sample(torch.tensor([1, 1, 1]), z)
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(model.sample(torch.tensor([0, 0, 0]), z), a)  # z given: exact


def test_cvae_validates(model):
    x = torch.rand(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="same batch size"):
        model.loss(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(B, 12\)"):
        model.loss(torch.rand(2, 5, dtype=torch.float64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="nan"):
        model.loss(torch.full((2, 12), float("nan"), dtype=torch.float64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="beta"):
        model.loss(x, torch.tensor([0, 1]), beta=-1.0)
    with pytest.raises(ValueError, match=r"0..3"):
        cvae.conditional_elbo(model, x, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="z must have shape"):
        model.sample(torch.tensor([0, 1]), torch.zeros(2, 5))


# --------------------------------------------------------------------------- masks


def test_random_mask_hides_one_square_at_uniform_positions():
    torch.manual_seed(0)
    masks = cvae.random_mask(6000, (8, 8), 3)
    assert masks.shape == (6000, 64) and masks.dtype == torch.float32
    hidden = (masks == 0).reshape(-1, 8, 8)
    assert bool((hidden.sum((1, 2)) == 9).all())
    rows, cols = hidden.any(2), hidden.any(1)
    assert bool((rows.sum(1) == 3).all()) and bool((cols.sum(1) == 3).all())
    top, left = rows.float().argmax(1), cols.float().argmax(1)
    assert bool(hidden[torch.arange(6000), top + 2, left + 2].all())  # contiguous square
    counts = torch.bincount(top * 6 + left, minlength=36).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3  # 36 positions, uniform


def test_random_mask_full_and_minimal_sizes():
    assert torch.equal(cvae.random_mask(2, (4, 4), 4), torch.zeros(2, 16))
    assert int((cvae.random_mask(5, (3, 7), 1) == 0).sum()) == 5


@pytest.mark.parametrize("args, match", [
    ((0, (8, 8), 2), "batch_size"),
    ((2, (8, 8), 9), "size must be"),
    ((2, (8, 8), 0), "size"),
    ((2, (8,), 2), "image_shape"),
    ((2, (8, 8.0), 2), "image_shape"),
])
def test_random_mask_validates(args, match):
    with pytest.raises(ValueError, match=match):
        cvae.random_mask(*args)


def test_fixed_mask_regions():
    top = cvae.fixed_mask((8, 8), "top").reshape(8, 8)
    assert top[:4].sum() == 0 and top[4:].sum() == 32
    center = cvae.fixed_mask((8, 8), "center").reshape(8, 8)
    assert center[2:6, 2:6].sum() == 0 and center.sum() == 48
    with pytest.raises(ValueError, match="region"):
        cvae.fixed_mask((8, 8), "diagonal")


# --------------------------------------------------------------------------- inpainting


@pytest.fixture
def masked_model():
    torch.manual_seed(0)
    return cvae.MaskedVAE(x_dim=16, z_dim=3, hidden_dims=(16,)).double()


def test_the_encoder_never_sees_hidden_pixels(masked_model):
    x = torch.rand(4, 16, dtype=torch.float64)
    mask = cvae.random_mask(4, (4, 4), 2).double()
    other = torch.where(mask.bool(), x, torch.rand_like(x))  # change only the hidden pixels
    torch.testing.assert_close(masked_model.encode(x, mask), masked_model.encode(other, mask))
    filled = cvae.inpaint(masked_model, x, mask)
    torch.testing.assert_close(filled, cvae.inpaint(masked_model, other, mask))
    assert torch.equal(filled[mask.bool()], x[mask.bool()])  # observed pixels kept exactly
    assert bool(((filled >= 0) & (filled <= 1)).all())


def test_masked_loss_reconstructs_every_pixel(masked_model):
    x = torch.rand(3, 16, dtype=torch.float64).round()
    mask = cvae.random_mask(3, (4, 4), 2).double()
    torch.manual_seed(1)
    loss = masked_model.loss(x, mask)
    torch.manual_seed(1)
    logits, mu, logvar = masked_model(x, mask)
    rec = -Bernoulli(logits=logits).log_prob(x).sum(-1)  # hidden pixels included
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(loss["loss"], (rec + kl).mean())
    torch.testing.assert_close(loss["rec"], rec.mean())


def test_masked_vae_validates(masked_model):
    x = torch.rand(2, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="only 0"):
        masked_model.loss(x, torch.full_like(x, 0.5))
    with pytest.raises(ValueError, match="shape of x"):
        cvae.inpaint(masked_model, x, torch.ones(2, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="p_mask"):
        cvae.masked_loss_fn((4, 4), 2, p_mask=1.5)


def test_hidden_pixel_error_matches_numpy():
    g = np.random.default_rng(0)
    x, x_hat = g.random((5, 16)), g.random((5, 16))
    mask = np.ones((5, 16))
    mask[:, 3:9] = 0
    expected = (((x - x_hat) ** 2) * (1 - mask)).sum(1) / 6
    out = cvae.hidden_pixel_error(torch.tensor(x), torch.tensor(x_hat), torch.tensor(mask))
    np.testing.assert_allclose(out.numpy(), expected)
    with pytest.raises(ValueError, match="at least one pixel"):
        cvae.hidden_pixel_error(torch.tensor(x), torch.tensor(x_hat), torch.ones(5, 16).double())


# --------------------------------------------------------------------------- training on digits


@pytest.fixture(scope="module")
def digits():
    return data.load_digits("train"), data.load_digits("test")


def test_mask_training_lowers_the_error_on_hidden_pixels(digits, one_thread):
    (x, _), (x_test, _) = digits
    torch.manual_seed(123)
    masks = cvae.random_mask(len(x_test), (8, 8), 4)  # a quarter of each test digit hidden
    errors = {}
    for name, loss_fn in (("plain", None), ("masked", cvae.masked_loss_fn((8, 8), 4))):
        torch.manual_seed(0)
        model = cvae.MaskedVAE(64, z_dim=8, hidden_dims=(128,))
        fit(model, x, num_epochs=60, batch_size=64, lr=2e-3, loss_fn=loss_fn, progress=False,
            seed=0)
        filled = cvae.inpaint(model, x_test, masks)
        errors[name] = float(cvae.hidden_pixel_error(x_test, filled, masks).mean())
    mean_image = x.mean(0).expand_as(x_test)
    errors["mean image"] = float(cvae.hidden_pixel_error(x_test, mean_image, masks).mean())
    assert errors["masked"] < 0.85 * errors["plain"] < 0.85 * errors["mean image"], errors


def test_class_conditional_samples_are_recognised(digits, one_thread):
    (x, y), (x_test, y_test) = digits
    classifier = LogisticRegression(max_iter=2000).fit(x.numpy(), y.numpy())
    assert classifier.score(x_test.numpy(), y_test.numpy()) > 0.9  # a trustworthy judge
    torch.manual_seed(0)
    model = cvae.CVAE(64, num_classes=10, z_dim=4, hidden_dims=(128,))
    fit(model, (x, y), num_epochs=40, batch_size=64, lr=2e-3, progress=False, seed=0)
    labels = torch.arange(10).repeat_interleave(30)
    samples = model.sample(labels)
    recognised = classifier.score(samples.numpy(), labels.numpy())
    assert recognised > 0.8, recognised
    with torch.no_grad():
        assert math.isfinite(float(model.loss(x_test, y_test)["loss"]))
