"""The logsumexp check accepts stable answers and diagnoses the classic mistakes."""

import pytest
import torch

from course_utils import check
from course_utils.checks import ExerciseNotStarted
from course_utils.checks.core import assert_fails, assert_passes
from course_utils.numerics import logsumexp


def test_reference_and_alternatives_pass():
    assert_passes(check.logsumexp, logsumexp)
    assert_passes(check.logsumexp, lambda x, dim: torch.logsumexp(x, dim))

    def with_max_values(x, dim):
        m = x.max(dim=dim, keepdim=True).values
        return (m + (x - m).exp().sum(dim, keepdim=True).log()).squeeze(dim)

    assert_passes(check.logsumexp, with_max_values)


def test_naive_version_overflows():
    assert_fails(check.logsumexp, lambda x, dim: x.exp().sum(dim).log(),
                 "contains inf", "overflows", "Subtract the maximum")


def test_forgetting_to_add_the_max_back():
    assert_fails(check.logsumexp,
                 lambda x, dim: (x - x.amax(dim, keepdim=True)).exp().sum(dim).log(),
                 "differs", "add it back")


def test_wrong_dimension():
    assert_fails(check.logsumexp, lambda x, dim: torch.logsumexp(x, dim=-1),
                 "shape", "wrong dimension")


def test_global_max_fails_on_slices_of_different_scale():
    assert_fails(check.logsumexp,
                 lambda x, dim: (x - x.max()).exp().sum(dim).log() + x.max(),
                 "one global maximum")


def test_log_mean_exp_is_not_logsumexp():
    assert_fails(check.logsumexp,
                 lambda x, dim: torch.logsumexp(x, dim) - torch.log(torch.tensor(x.shape[dim])),
                 "log of the mean")


def test_unfinished_exercise():
    def logsumexp_stub(x, dim):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.logsumexp(logsumexp_stub)
