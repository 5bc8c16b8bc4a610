"""Disentanglement metrics: histogram estimators against numpy/scikit-learn, MIG properties."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from course_utils import metrics
from course_utils.metrics import (
    discrete_entropy,
    discrete_mutual_information,
    discretize,
    mig_score,
    mutual_information_gap,
    posterior_means,
)
from course_utils.sprites import make_sprites
from course_utils.vae import VAE, gaussian_kl


@pytest.fixture(scope="module")
def sprites():
    _, values, indices = make_sprites(6000, seed=5)
    return values, indices


def test_discretize_matches_numpy_histogram_bins():
    z = torch.randn(500, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    codes = discretize(z, num_bins=20)
    for j in range(4):
        edges = np.histogram(z[:, j].numpy(), 20)[1]
        expected = np.digitize(z[:, j].numpy(), edges[:-1]) - 1  # disentanglement_lib's bins
        np.testing.assert_array_equal(codes[:, j].numpy(), expected)
    assert codes.dtype == torch.int64 and codes.min() == 0 and codes.max() == 19


def test_discretize_constant_column_is_one_bin():
    z = torch.cat([torch.randn(50, 1), torch.full((50, 1), 3.0)], dim=1)
    assert (discretize(z, 10)[:, 1] == 0).all()


def test_entropy_and_mutual_information_match_sklearn():
    g = torch.Generator().manual_seed(1)
    factors = torch.randint(0, 5, (800, 3), generator=g)
    factors[:, 2] = factors[:, 0] * 2 + 7  # a relabelled copy of the first factor
    codes = torch.stack([factors[:, 0], torch.randint(0, 3, (800,), generator=g),
                         (factors[:, 1] + torch.randint(0, 2, (800,), generator=g)) // 2], 1)
    h = discrete_entropy(factors)
    mi = discrete_mutual_information(codes, factors)
    for k in range(3):
        f = factors[:, k].numpy()
        assert h[k].item() == pytest.approx(mutual_info_score(f, f), abs=1e-10)
        for j in range(3):
            assert mi[j, k].item() == pytest.approx(mutual_info_score(codes[:, j].numpy(), f),
                                                    abs=1e-10)
    assert h.dtype == torch.float64 and mi.shape == (3, 3)
    assert mi[0, 0] == pytest.approx(h[0].item()) and mi[0, 2] == pytest.approx(h[0].item())


def test_entropy_of_uniform_factor_is_log_of_its_size():
    factors = torch.arange(12).repeat(10).view(-1, 1)
    assert discrete_entropy(factors).item() == pytest.approx(math.log(12))


def test_mutual_information_gap_closed_form():
    mi = torch.tensor([[0.9, 0.1], [0.3, 0.5], [0.2, 0.0]], dtype=torch.float64)
    entropy = torch.tensor([1.0, 2.0], dtype=torch.float64)
    # factor 0: (0.9 - 0.3) / 1 = 0.6; factor 1: (0.5 - 0.1) / 2 = 0.2; mean 0.4
    assert mutual_information_gap(mi, entropy).item() == pytest.approx(0.4)
    assert mutual_information_gap(mi, entropy).shape == ()


def test_mig_is_one_for_codes_that_copy_the_factors(sprites):
    _, indices = sprites
    copy = indices.double()  # 40 bins keep every value of every factor apart
    # not exactly 1: the plug-in estimate of I(copy of x; y) is biased up by about
    # (32 - 1)(32 - 1) / 2N nats for independent factors, which shrinks the gaps a little
    mig = mig_score(copy, indices, num_bins=40).item()
    assert 0.96 < mig <= 1.0
    assert mig_score(copy[:3000], indices[:3000], num_bins=40).item() < mig  # the bias ~ 1/N
    # any order of the codes, any scale, any extra noise dimensions: still one
    shuffled = torch.cat([copy[:, [3, 0, 4, 2, 1]] * 5, torch.randn(len(copy), 5,
                                                                       dtype=torch.float64)], 1)
    assert mig_score(shuffled, indices, num_bins=40).item() == pytest.approx(mig, abs=2e-3)


def test_mig_is_high_for_factor_values_with_default_bins(sprites):
    values, indices = sprites
    assert mig_score(values, indices).item() > 0.85  # 20 bins lose a little of 32 and 40 values


def test_mig_is_near_zero_for_random_codes(sprites):
    _, indices = sprites
    z = torch.randn(len(indices), 10, generator=torch.Generator().manual_seed(0))
    assert 0 <= mig_score(z, indices).item() < 0.02


def test_mig_is_low_when_one_code_carries_two_factors(sprites):
    """Rotating x and y into two mixed codes keeps the information but lowers the gap."""
    values, indices = sprites
    mixed = values.clone()
    mixed[:, 3], mixed[:, 4] = values[:, 3] + values[:, 4], values[:, 3] - values[:, 4]
    assert mig_score(mixed, indices).item() < mig_score(values, indices).item() - 0.25


def test_mig_drops_constant_factors(sprites):
    values, indices = sprites
    with_constant = torch.cat([indices, torch.zeros(len(indices), 1, dtype=torch.int64)], 1)
    assert mig_score(values, with_constant).item() == pytest.approx(
        mig_score(values, indices).item())


def test_posterior_means_batches_like_one_call():
    torch.manual_seed(0)
    model = VAE(16, 3, (8,))
    x = torch.rand(25, 16)
    mu = posterior_means(model, x, batch_size=4)
    torch.testing.assert_close(mu, model.encode(x)[0].detach())
    assert model.training and not mu.requires_grad


def test_kl_per_dimension_sums_to_the_kl():
    torch.manual_seed(0)
    model = VAE(16, 3, (8,))
    x = torch.rand(40, 16)
    per_dim = metrics.kl_per_dimension(model, x)
    mu, logvar = model.encode(x)
    assert per_dim.shape == (3,) and (per_dim >= 0).all()
    assert per_dim.sum().item() == pytest.approx(gaussian_kl(mu, logvar).mean().item(), rel=1e-5)
    assert metrics.active_units(model, x, threshold=0.0) == 3


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda: discretize(torch.arange(6).view(3, 2)), TypeError, "floating"),
        (lambda: discretize(torch.randn(3, 2), num_bins=1), ValueError, "num_bins"),
        (lambda: discretize(torch.tensor([[float("nan")]])), ValueError, "nan"),
        (lambda: discretize(torch.randn(5)), ValueError, "shape"),
        (lambda: discrete_entropy(torch.randn(5, 2)), TypeError, "integer"),
        (lambda: discrete_mutual_information(torch.zeros(4, 2, dtype=torch.int64),
                                             torch.zeros(5, 2, dtype=torch.int64)),
         ValueError, "same N"),
        (lambda: mutual_information_gap(torch.rand(1, 3), torch.ones(3)), ValueError, "Z >= 2"),
        (lambda: mutual_information_gap(torch.rand(4, 3), torch.ones(2)), ValueError, "entropy"),
        (lambda: mutual_information_gap(torch.rand(4, 3), torch.tensor([1.0, 0.0, 1.0])),
         ValueError, "entropy > 0"),
        (lambda: mutual_information_gap(torch.rand(4, 3).numpy(), torch.ones(3)), TypeError,
         "mi must"),
        (lambda: mig_score(torch.randn(10, 1), torch.zeros(10, 1, dtype=torch.int64)),
         ValueError, "at least 2"),
        (lambda: mig_score(torch.randn(10, 3), torch.zeros(10, 2, dtype=torch.int64)),
         ValueError, "constant"),
        (lambda: posterior_means(object(), torch.rand(3, 2)), TypeError, "encode"),
    ],
)
def test_validation(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


def test_stroke_style_measures_ink_and_the_lean_of_a_stroke():
    from course_utils.metrics import stroke_style

    upright = torch.zeros(9, 9)
    upright[1:8, 4] = 1.0
    leaning = torch.zeros(9, 9)
    for row in range(1, 8):  # one column to the right for every row up: a slope of 1
        leaning[row, 8 - row] = 1.0
    ink, slant = stroke_style(torch.stack([upright, leaning, leaning.flip(1)]).reshape(3, -1),
                              (9, 9))
    assert ink.tolist() == [7.0, 7.0, 7.0]
    assert slant.tolist() == pytest.approx([0.0, 1.0, -1.0], abs=1e-6)


def test_digit_reader_reads_held_out_digits_and_leaves_the_random_stream_alone():
    from course_utils.data import load_digits
    from course_utils.metrics import fit_digit_reader, read_digits

    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    reader = fit_digit_reader(x_train, y_train, num_steps=300)
    assert torch.rand(1) == expected_next
    read = read_digits(reader, x_test.reshape(1, *x_test.shape))
    assert read.shape == (1, len(x_test))
    assert (read[0] == y_test).float().mean() > 0.85
