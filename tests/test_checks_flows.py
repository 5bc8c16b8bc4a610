"""The planar_flow check accepts correct flows and names the classic log-determinant mistakes."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import check
from course_utils.checks import ExerciseNotStarted
from course_utils.checks.core import assert_fails, assert_passes
from course_utils.flows import planar_flow


def _u_hat(w, u):
    wu = (w * u).sum(-1, keepdim=True)
    return u + (-1 + F.softplus(wu) - wu) * w / (w * w).sum(-1, keepdim=True)


def student(z, w, u, b, *, constrain=True, dh=None, one_plus=1.0, log=True, abs_=True,
            u_in_det=None):
    """A student's planar flow written out by hand; the keywords inject one slip."""
    u_hat = _u_hat(w, u) if constrain else u
    a = (z * w).sum(-1) + b
    z_new = z + u_hat * torch.tanh(a)[..., None]
    slope = (1 - torch.tanh(a) ** 2) if dh is None else dh(a)
    det = one_plus + slope * (w * (u_hat if u_in_det is None else u_in_det)).sum(-1)
    det = det.abs() if abs_ else det
    return z_new, (torch.log(det) if log else det)


def test_reference_and_alternatives_pass():
    assert_passes(check.planar_flow, planar_flow)
    assert_passes(check.planar_flow, student)

    def with_einsum_and_cosh(z, w, u, b):  # h'(a) = 1 / cosh(a)², log1p, einsum
        w_b, u_b = torch.broadcast_tensors(w.expand_as(z), u.expand_as(z))
        wu = torch.einsum("bd,bd->b", w_b, u_b)[:, None]
        u_hat = u_b + (F.softplus(wu) - 1 - wu) * w_b / w_b.norm(dim=-1, keepdim=True) ** 2
        a = torch.einsum("bd,bd->b", z, w_b) + b
        z_new = z + u_hat * torch.tanh(a)[:, None]
        log_det = torch.log1p(torch.einsum("bd,bd->b", w_b, u_hat) / torch.cosh(a) ** 2)
        return z_new, log_det

    assert_passes(check.planar_flow, with_einsum_and_cosh)


def test_forgotten_constraint():
    assert_fails(check.planar_flow, lambda z, w, u, b: student(z, w, u, b, constrain=False),
                 "`z_new` differs", "only invertible when wᵀu ≥ -1")


def test_forgotten_constraint_and_abs():
    assert_fails(check.planar_flow,
                 lambda z, w, u, b: student(z, w, u, b, constrain=False, abs_=False),
                 "`z_new` differs", "only invertible when wᵀu ≥ -1")


def test_h_instead_of_its_derivative():
    assert_fails(check.planar_flow,
                 lambda z, w, u, b: student(z, w, u, b, dh=torch.tanh),
                 "log_det", "derivative of h = tanh")


def test_wrong_derivative_of_tanh():
    assert_fails(check.planar_flow,
                 lambda z, w, u, b: student(z, w, u, b, dh=lambda a: 1 - torch.tanh(a)),
                 "log_det", "1 - tanh²")


def test_missing_one_plus():
    assert_fails(check.planar_flow, lambda z, w, u, b: student(z, w, u, b, one_plus=0.0),
                 "log_det", "the 1 + is missing")


def test_missing_abs_without_one_plus_gives_nan_and_the_hint():
    assert_fails(check.planar_flow,
                 lambda z, w, u, b: student(z, w, u, b, one_plus=0.0, abs_=False),
                 "contains nan", "the 1 + is missing")


def test_determinant_instead_of_its_log():
    assert_fails(check.planar_flow, lambda z, w, u, b: student(z, w, u, b, log=False),
                 "log_det", "not the determinant itself")


def test_raw_u_in_the_determinant_only():
    assert_fails(check.planar_flow, lambda z, w, u, b: student(z, w, u, b, u_in_det=u),
                 "log_det", "the same û belongs in both")


def test_wrong_constraint_without_minus_one():
    def no_minus_one(z, w, u, b):
        wu = (w * u).sum(-1, keepdim=True)
        u_hat = u + (F.softplus(wu) - wu) * w / (w * w).sum(-1, keepdim=True)
        return student(z, w, u_hat, b, constrain=False)

    assert_fails(check.planar_flow, no_minus_one, "z_new", "differs", "without the -1")


def test_norm_instead_of_squared_norm():
    def unsquared(z, w, u, b):
        wu = (w * u).sum(-1, keepdim=True)
        u_hat = u + (F.softplus(wu) - 1 - wu) * w / w.norm(dim=-1, keepdim=True)
        return student(z, w, u_hat, b, constrain=False)

    assert_fails(check.planar_flow, unsquared, "z_new", "squared norm")


def test_forgotten_bias():
    assert_fails(check.planar_flow, lambda z, w, u, b: student(z, w, u, 0.0 * b),
                 "z_new", "b is missing")


def test_log_det_summed_over_the_batch():
    def summed(z, w, u, b):
        z_new, log_det = planar_flow(z, w, u, b)
        return z_new, log_det.sum()

    assert_fails(check.planar_flow, summed, "`log_det` has shape ()", "expected (")


def test_detached_output():
    def detached(z, w, u, b):
        z_new, log_det = planar_flow(z, w, u, b)
        return z_new, log_det.detach()

    assert_fails(check.planar_flow, detached, "`log_det` does not depend on w, u, b")


def test_numpy_output_and_single_output():
    assert_fails(check.planar_flow, lambda z, w, u, b: planar_flow(z, w, u, b)[0],
                 "tuple of 2 values")

    def numpy_log_det(z, w, u, b):
        z_new, log_det = planar_flow(z, w, u, b)
        return z_new, log_det.detach().numpy()

    assert_fails(check.planar_flow, numpy_log_det, "NumPy")


def test_unfinished_exercise():
    def planar_flow_stub(z, w, u, b):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted):
        check.planar_flow(planar_flow_stub)
