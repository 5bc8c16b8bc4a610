"""Stable reductions against scipy."""

import numpy as np
import pytest
import scipy.special
import torch

from course_utils.numerics import log_mean_exp, logsumexp


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e5])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_logsumexp_matches_scipy(scale, dim):
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * scale
    expected = scipy.special.logsumexp(x.numpy(), axis=dim)
    np.testing.assert_allclose(logsumexp(x, dim).numpy(), expected, rtol=1e-12)


def test_logsumexp_handles_minus_infinity():
    x = torch.tensor([[0.0, -torch.inf], [-torch.inf, -torch.inf]], dtype=torch.float64)
    out = logsumexp(x, 1)
    assert out[0] == 0.0 and out[1] == -torch.inf


def test_logsumexp_gradient_is_softmax():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    logsumexp(x, 1).sum().backward()
    torch.testing.assert_close(x.grad, torch.softmax(x.detach(), 1))


def test_log_mean_exp():
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    expected = np.log(np.mean(np.exp([1.0, 2.0, 3.0])))
    assert log_mean_exp(x, 1).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", [np.ones(3), torch.ones(3, dtype=torch.int64)])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(TypeError, match="x must be"):
        logsumexp(bad, 0)
