"""Checks for notebook 09 (beyond the Gaussian VAE): one planar flow and its log-determinant."""

import torch
import torch.nn.functional as F

from .. import flows
from .core import (
    Case,
    Mistake,
    call_student,
    check_type,
    compare,
    exercise,
    fail,
    private_generator,
)

_ARGS = ("z", "w", "u", "b")
_OUTPUTS = ("z_new", "log_det")


def _variant(z, w, u, b, *, constrain=True, minus_one=True, squared_norm=True, with_b=True,
             u_out="hat", u_det="hat", dh="1-tanh^2", at="z", one_plus=True, use_log=True,
             use_abs=True):
    """The planar flow with one or more deliberate slips (all flags at default: the reference)."""
    wu = (w * u).sum(-1, keepdim=True)
    m = F.softplus(wu) - (1.0 if minus_one else 0.0)
    norm = w.pow(2).sum(-1, keepdim=True)
    norm = norm if squared_norm else norm.sqrt()
    u_hat = u + (m - wu) * w / norm if constrain else u
    pick = {"hat": u_hat, "raw": u}
    a = (z * w).sum(-1) + (b if with_b else 0.0)
    z_new = z + pick[u_out] * torch.tanh(a).unsqueeze(-1)
    if at == "z_new":
        a = (z_new * w).sum(-1) + (b if with_b else 0.0)
    h = torch.tanh(a)
    slope = {"1-tanh^2": 1 - h.pow(2), "1-tanh": 1 - h, "tanh": h}[dh]
    det = (1.0 if one_plus else 0.0) + slope * (w * pick[u_det]).sum(-1)
    det = det.abs() if use_abs else det
    return z_new, (det.log() if use_log else det)


def _mistake(hint: str, **slips) -> list[Mistake]:
    """The slip as written, and the same slip with the abs also forgotten (nan for some inputs)."""
    return [
        Mistake(hint, lambda z, w, u, b: _variant(z, w, u, b, **slips)),
        Mistake(hint, lambda z, w, u, b: _variant(z, w, u, b, use_abs=False, **slips)),
    ]


_NO_CONSTRAINT = (
    "u is used as it is: f is only invertible when wᵀu ≥ -1. First map u to û with "
    "wᵀû = m(wᵀu) = -1 + softplus(wᵀu), then use û everywhere."
)
_MISTAKES = [
    *_mistake(_NO_CONSTRAINT, constrain=False),
    *_mistake("z_new uses the raw u but log_det uses û: the same û belongs in both.",
              u_out="raw"),
    *_mistake("log_det uses the raw u but z_new uses û: the same û belongs in both.",
              u_det="raw"),
    *_mistake("m(a) = -1 + softplus(a): without the -1, wᵀû is pushed above 0 instead of -1.",
              minus_one=False),
    *_mistake("the correction of u is along w / ||w||² (squared norm), so that wᵀû comes "
              "out as m(wᵀu).", squared_norm=False),
    *_mistake("b is missing: the flow is z + û h(wᵀz + b), in the output and in ψ(z).",
              with_b=False),
    *_mistake("ψ(z) = h'(wᵀz + b) w uses the derivative of h = tanh, not tanh itself.",
              dh="tanh"),
    *_mistake("the derivative of tanh is 1 - tanh², not 1 - tanh.", dh="1-tanh"),
    *_mistake("the matrix determinant lemma gives det(I + ûψᵀ) = 1 + ûᵀψ: the 1 + is missing.",
              one_plus=False),
    *_mistake("ψ is evaluated at the output f(z); the Jacobian of f is taken at the input z.",
              at="z_new"),
    *_mistake("log_det should be the log of |det ∂f/∂z|, not the determinant itself.",
              use_log=False),
    Mistake("log_det has nan: the log of a negative number. Take log |1 + ûᵀψ| and check "
            "that you use û, not u.", lambda z, w, u, b: _variant(z, w, u, b, use_abs=False)),
]


def _case(g, batch, dim, *, amortised=False, scale=1.0, dtype=torch.float64, w_dot_u=None,
          label=None):
    """Random inputs; ``w_dot_u`` sets wᵀu (e.g. -3: the raw u would break invertibility)."""
    shape = (batch, dim) if amortised else (dim,)
    z = scale * torch.randn(batch, dim, generator=g, dtype=dtype)
    w = torch.randn(*shape, generator=g, dtype=dtype)
    u = torch.randn(*shape, generator=g, dtype=dtype)
    if w_dot_u is not None:  # shift u along w so that wᵀu = w_dot_u exactly
        w2 = w.pow(2).sum(-1, keepdim=True)
        u = u + (w_dot_u - (w * u).sum(-1, keepdim=True)) * w / w2
    b = 0.5 * torch.randn((batch,) if amortised else (), generator=g, dtype=dtype)
    return Case((z, w, u, b), label=label)


def _cases() -> list[Case]:
    g = private_generator("planar_flow")
    return [
        _case(g, 6, 2, w_dot_u=-3.0),
        _case(g, 5, 3, w_dot_u=2.0),
        _case(g, 1, 2, w_dot_u=-1.5),
        _case(g, 8, 2, amortised=True),
        _case(g, 4, 5, dtype=torch.float32, w_dot_u=0.5),
        _case(g, 6, 2, scale=50.0, w_dot_u=-2.0),
    ]


def _check_differentiable(student_fn) -> None:
    """The log-determinant must stay in the autograd graph: it is part of the loss."""
    g = private_generator("planar_flow", salt=1)
    case = _case(g, 3, 2, w_dot_u=-2.0)
    for tensor in case.args[1:]:
        tensor.requires_grad_(True)
    out = call_student("planar_flow", student_fn, case, _ARGS)
    check_type("planar_flow", out, (None, None), "your output")
    for value, what in zip(out, _OUTPUTS, strict=True):
        if isinstance(value, torch.Tensor) and not value.requires_grad:
            fail("planar_flow", f"`{what}` does not depend on w, u, b through autograd (was "
                 "something detached or converted?). It must stay differentiable: the flow "
                 "parameters are trained through it.")


@exercise("09_beyond", hints=(
    "Three steps: constrain u to û (so that wᵀû > -1), apply f(z) = z + û tanh(wᵀz + b), and "
    "compute log |1 + ûᵀψ(z)| with ψ(z) = (1 - tanh²(wᵀz + b)) w.",
    "û = u + (m(wᵀu) - wᵀu) w / ||w||² with m(a) = -1 + softplus(a); keep the sums over the last "
    "dimension with keepdim=True where they multiply vectors.",
))
def planar_flow(student_fn):
    """Check ``planar_flow(z, w, u, b) -> (z_new, log_det)`` on shared and amortised parameters."""
    _check_differentiable(student_fn)
    compare("planar_flow", student_fn, flows.planar_flow, _cases(), arg_names=_ARGS,
            output_names=_OUTPUTS, mistakes=_MISTAKES, rtol=1e-4, atol=1e-5)
