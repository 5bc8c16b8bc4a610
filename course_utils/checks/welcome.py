"""Checks for notebook 00 (welcome): the stable log-sum-exp."""

import torch

from .. import numerics
from .core import Case, Mistake, compare, exercise, private_generator

_MISTAKES = [
    Mistake(
        "exp of a large number overflows to inf (and of a very negative one underflows to 0). "
        "Subtract the maximum before exponentiating.",
        lambda x, dim: x.exp().sum(dim).log(),
    ),
    Mistake(
        "your result is off by exactly the maximum m you subtracted: after subtracting m "
        "you must add it back. Write log Σ exp(x) in terms of log Σ exp(x - m).",
        lambda x, dim: (x - x.amax(dim, keepdim=True)).exp().sum(dim).log(),
    ),
    Mistake(
        "you reduced over the wrong dimension; use the `dim` argument everywhere.",
        lambda x, dim: torch.logsumexp(x, dim=-1),
    ),
    Mistake(
        "you reduced over the wrong dimension; use the `dim` argument everywhere.",
        lambda x, dim: torch.logsumexp(x, dim=0),
    ),
    Mistake(
        "this is the log of the mean, not of the sum: there is no 1/n in log-sum-exp.",
        lambda x, dim: torch.logsumexp(x, dim) - torch.log(torch.tensor(float(x.shape[dim]))),
    ),
    Mistake(
        "one global maximum is not enough when slices differ in scale: subtract the maximum of "
        "each slice along `dim` (keepdim=True).",
        lambda x, dim: (x - x.max()).exp().sum(dim).log() + x.max(),
    ),
]


def _cases() -> list[Case]:
    g = private_generator("logsumexp")
    spread = torch.tensor([[900.0], [-900.0], [0.0]], dtype=torch.float64)
    return [
        Case((torch.randn(3, 5, generator=g, dtype=torch.float64), 1)),
        Case((torch.randn(4, 6, generator=g, dtype=torch.float64), 0)),
        Case((torch.randn(1, 7, generator=g, dtype=torch.float64), -1)),
        Case((torch.randn(2, 3, 4, generator=g), 1)),
        Case((1000 + 10 * torch.randn(4, 6, generator=g, dtype=torch.float64), 1)),
        Case((-1000 + 10 * torch.randn(4, 6, generator=g, dtype=torch.float64), 1)),
        Case((spread + torch.randn(3, 5, generator=g, dtype=torch.float64), 1)),
    ]


@exercise("00_welcome", hints=(
    "Subtract the largest value along `dim` before exponentiating, so that nothing overflows; "
    "remember to account for what you subtracted.",
    "`x.amax(dim=dim, keepdim=True)` keeps the dimension so it broadcasts against x; squeeze it "
    "away before you add it to the result, which has `dim` removed.",
))
def logsumexp(student_fn):
    """Check a stable ``logsumexp(x, dim)`` against the reference on small and huge inputs."""
    compare("logsumexp", student_fn, numerics.logsumexp, _cases(), arg_names=("x", "dim"),
            mistakes=_MISTAKES)
