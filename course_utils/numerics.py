"""Numerically stable reductions used throughout the course."""

import torch


def _require_float_tensor(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log Σ_i exp(x_i) along ``dim``, stable for large |x|: (..., n, ...) -> (..., ...)."""
    _require_float_tensor(x)
    m = x.amax(dim=dim, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # rows of -inf stay -inf
    return (x - m).exp().sum(dim=dim).log() + m.squeeze(dim)


def log_mean_exp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log (1/n) Σ_i exp(x_i) along ``dim``: the log of an average of weights given as logs."""
    _require_float_tensor(x)
    n = x.shape[dim]
    return logsumexp(x, dim) - torch.log(torch.tensor(float(n), dtype=x.dtype, device=x.device))
