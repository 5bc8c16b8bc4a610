"""Tighter bounds and evaluation (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted
Autoencoders", ICLR; arXiv 2015).

- ``log_importance_weights``: log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) from a
  Bernoulli-decoder VAE's pieces (an exercise of notebook 05).
- ``iwae_bound``: the k-sample bound L_k = log (1/k) Σ_i w_i (the other exercise).
- ``iwae_loss``: -L_k as a training loss for a model with ``log_weights(x, k)``.
- ``estimate_log_likelihood``: log p(x) with k = 5000 samples, in chunks, without running out
  of memory.
- ``posterior_mean_variance``, ``active_units``, ``kl_per_dimension``: posterior collapse.
- ``gradient_snr``, ``iwae_gradient_snr``: the signal-to-noise ratio of the gradient of L_k
  (Rainforth et al. 2018, "Tighter variational bounds are not necessarily better").
- ``gaussian_log_weights``, ``local_gaussian_posterior``: the amortisation gap (Cremer, Li &
  Duvenaud 2018): the best Gaussian q for each x alone, against the encoder's.
- ``LinearGaussian``: a toy model whose log p(x) is known exactly, to see the bounds converge.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .numerics import log_mean_exp, logsumexp

LOG_2PI = math.log(2 * math.pi)
ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016, section 5.2: a unit is active if Cov_x(E_q[u]) > 0.01


# --------------------------------------------------------------------------- validation


def _require_tensor(x, name: str, ndim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains nan values")


def _require_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains nan or inf values")


def _require_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _require_model(model) -> None:
    if not callable(getattr(model, "log_weights", None)):
        raise TypeError(
            f"model must have a method log_weights(x, k) -> (k, B), got {type(model).__name__}"
        )


def _model_device(model, default: torch.device) -> torch.device:
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    return param.device if param is not None else default


# --------------------------------------------------------------------------- the bound


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    # log N(z | mu, diag e^logvar) = -1/2 Σ_j (log 2π + logvar_j + (z_j - mu_j)² e^{-logvar_j})
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def log_importance_weights(
    x: torch.Tensor, x_logits: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
    logvar: torch.Tensor,
) -> torch.Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for a Bernoulli decoder -> (k, B).

    x (B, D) in [0, 1], x_logits (k, B, D) decoded from z (k, B, Z), mu and logvar (B, Z) of q.
    """
    for value, name, ndim in ((x, "x", 2), (x_logits, "x_logits", 3), (z, "z", 3),
                              (mu, "mu", 2), (logvar, "logvar", 2)):
        _require_tensor(value, name, ndim)
    if x_logits.shape[1:] != x.shape:
        raise ValueError(f"x_logits must have shape (k, *x.shape) = (k, {x.shape[0]}, "
                         f"{x.shape[1]}), got {tuple(x_logits.shape)}")
    if mu.shape != logvar.shape or z.shape[1:] != mu.shape or z.shape[0] != x_logits.shape[0]:
        raise ValueError(f"expected z (k, B, Z) and mu, logvar (B, Z) with k = "
                         f"{x_logits.shape[0]}, B = {x.shape[0]}; got z {tuple(z.shape)}, "
                         f"mu {tuple(mu.shape)}, logvar {tuple(logvar.shape)}")
    # Burda et al. 2016, eq. 8: w_i = p(x, z_i) / q(z_i|x) = p(x|z_i) p(z_i) / q(z_i|x)
    log_px_given_z = -F.binary_cross_entropy_with_logits(
        x_logits, x.expand_as(x_logits), reduction="none").sum(-1)  # (k, B), Bernoulli decoder
    log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))  # (k, B), prior N(0, I)
    log_qz = _log_normal(z, mu, logvar)  # (k, B), the encoder's Gaussian
    return log_px_given_z + log_pz - log_qz


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """L_k = log (1/k) Σ_i exp(log_w_i), over the k samples of each image: log_w (k, B) -> (B,)."""
    _require_tensor(log_w, "log_w", 2)
    if torch.isposinf(log_w).any():
        raise ValueError("log_w contains +inf values")
    if log_w.shape[0] < 1:
        raise ValueError("log_w must hold at least one sample (k >= 1)")
    # Burda et al. 2016, eq. 8; for k = 1 this is the (one-sample) ELBO
    return log_mean_exp(log_w, dim=0)


def iwae_loss(model, x: torch.Tensor, k: int = 5, bound_fn=None) -> dict[str, torch.Tensor]:
    """-L_k for a model with log_weights, batch means: {"loss": -iwae, "neg_elbo"} (scalars).

    ``bound_fn(log_w) -> (B,)`` computes L_k from the (k, B) log weights (default
    ``iwae_bound``; notebook 05 passes the student's once its check has passed)."""
    _require_model(model)
    _require_positive_int(k, "k")
    if bound_fn is not None and not callable(bound_fn):
        raise TypeError(f"bound_fn must be a function log_w (k, B) -> (B,), got "
                        f"{type(bound_fn).__name__}")
    log_w = model.log_weights(x, k)  # (k, B)
    # Burda et al. 2016, eq. 8 (objective) and eq. 14 (its gradient: the normalized weights
    # w_i / Σ_j w_j average the per-sample gradients; autograd of logsumexp does exactly that)
    bound = (bound_fn or iwae_bound)(log_w)  # (B,)
    return {"loss": -bound.mean(), "neg_elbo": -log_w.detach().mean()}


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def estimate_log_likelihood(
    model, x: torch.Tensor, k: int = 5000, chunk_size: int = 500, batch_size: int = 100
) -> torch.Tensor:
    """log p(x) ≈ L_k with k importance samples, in batches and chunks of samples: x (N, D) -> (N,).

    Memory grows with ``chunk_size * batch_size``, never with ``k``: each chunk's log-sum-exp
    is added to a running total (log-add-exp), and the log k is subtracted at the end.
    """
    _require_model(model)
    _require_tensor(x, "x", 2)
    _require_finite(x, "x")
    for value, name in ((k, "k"), (chunk_size, "chunk_size"), (batch_size, "batch_size")):
        _require_positive_int(value, name)
    device = _model_device(model, x.device)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        out = [_batch_log_likelihood(model, xb.to(device), k, chunk_size).to(x.device)
               for xb in x.split(batch_size)]
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    return torch.cat(out).to(x.dtype) if out else x.new_zeros(0)


def _batch_log_likelihood(model, x: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Streaming log-mean-exp over k samples drawn chunk_size at a time: x (B, D) -> (B,)."""
    total = None  # log Σ_i w_i over the samples so far, (B,)
    for start in range(0, k, chunk_size):
        chunk = logsumexp(model.log_weights(x, min(chunk_size, k - start)).double(), dim=0)
        total = chunk if total is None else torch.logaddexp(total, chunk)
    return total - math.log(k)


def _posterior_means(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must have encode(x) -> (mu, logvar), got {type(model).__name__}")
    _require_tensor(x, "x", 2)
    _require_finite(x, "x")
    device = _model_device(model, x.device)
    with torch.no_grad():
        return torch.cat([model.encode(xb.to(device))[0] for xb in x.split(batch_size)])


def posterior_mean_variance(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Variance over the data of each posterior mean E_q[z_j|x]: x (N, D) -> (Z,)."""
    _require_positive_int(batch_size, "batch_size")
    mu = _posterior_means(model, x, batch_size)  # (N, Z)
    if mu.shape[0] < 2:
        raise ValueError("need at least 2 images to measure a variance over the data")
    return mu.var(dim=0, unbiased=False).to(x.device)


def active_units(model, x: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """How many latent units have Cov_x(E_q[u|x]) > threshold (Burda et al. 2016, sec. 5.2)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
    return int((posterior_mean_variance(model, x) > threshold).sum())


def kl_per_dimension(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """KL(q(z_j|x) || N(0, 1)) per latent dimension, averaged over the data: x (N, D) -> (Z,)."""
    _require_positive_int(batch_size, "batch_size")
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must have encode(x) -> (mu, logvar), got {type(model).__name__}")
    _require_tensor(x, "x", 2)
    device = _model_device(model, x.device)
    with torch.no_grad():
        parts = []
        for xb in x.split(batch_size):
            mu, logvar = model.encode(xb.to(device))
            # Kingma & Welling 2014, appendix B, one term per dimension
            parts.append(0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar))
        return torch.cat(parts).mean(0).to(x.device)


# --------------------------------------------------------------------------- gradient noise


def gradient_snr(grads: torch.Tensor) -> torch.Tensor:
    """|mean| / std over repeated draws of each gradient entry: grads (R, P) -> (P,).

    std is the sample standard deviation (R - 1 in the denominator). An entry that never
    varies has std 0: its ratio is inf (nan if its mean is 0 too), so summarise with a median.
    """
    _require_tensor(grads, "grads", 2)
    if grads.shape[0] < 2:
        raise ValueError(f"need at least 2 repeats (rows) to measure a spread, got "
                         f"{grads.shape[0]}")
    return grads.mean(0).abs() / grads.std(0)


def iwae_gradient_snr(model, x: torch.Tensor, k: int, params, num_repeats: int = 100
                      ) -> torch.Tensor:
    """SNR of the gradient of L_k (mean over the batch x) w.r.t. params, per entry: -> (P,).

    Draws the gradient num_repeats times with fresh samples z, the model fixed (Rainforth et
    al. 2018, section 3: the encoder's SNR falls like 1/sqrt(k), the decoder's rises).
    """
    _require_model(model)
    _require_positive_int(k, "k")
    _require_positive_int(num_repeats, "num_repeats")
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("params must be a non-empty list of tensors that require grad, e.g. "
                         "list(model.encoder.parameters())")
    draws = []
    with torch.enable_grad():
        for _ in range(num_repeats):
            bound = iwae_bound(model.log_weights(x, k)).mean()
            grads = torch.autograd.grad(bound, params, allow_unused=True)
            draws.append(torch.cat([torch.zeros_like(p).flatten() if g is None else g.flatten()
                                    for p, g in zip(params, grads, strict=True)]))
    return gradient_snr(torch.stack(draws))


# --------------------------------------------------------------------------- amortisation gap


def _require_gaussian_model(model, x, mu, logvar) -> None:
    if not callable(getattr(model, "log_likelihood", None)):
        raise TypeError(f"model must have log_likelihood(x, z) -> log p(x|z), got "
                        f"{type(model).__name__}")
    for value, name in ((x, "x"), (mu, "mu"), (logvar, "logvar")):
        _require_tensor(value, name, 2)
        _require_finite(value, name)
    if mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu and logvar must have shape (B, Z) with B = {x.shape[0]}, got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")


def _gaussian_log_weights(model, x, mu, logvar, k: int) -> torch.Tensor:
    eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, Z), reparameterised
    log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)  # (k, B)
    log_prior = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)  # (k, B), p(z) = N(0, I)
    return model.log_likelihood(x, z) + log_prior - log_q


def gaussian_log_weights(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                         k: int) -> torch.Tensor:
    """log p(x, z_i) - log q(z_i) for z_i ~ q = N(mu, diag e^logvar), any q, prior N(0, I).

    x (B, D), mu and logvar (B, Z) -> (k, B); the model needs log_likelihood(x, z (k, B, Z)).
    Their mean is the ELBO of that q, their log-mean-exp an importance-sampled log p(x).
    """
    _require_gaussian_model(model, x, mu, logvar)
    _require_positive_int(k, "k")
    return _gaussian_log_weights(model, x, mu, logvar, k)


def local_gaussian_posterior(
    model, x: torch.Tensor, num_steps: int = 300, num_samples: int = 16, lr: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """The diagonal Gaussian q that maximises each x's own ELBO: x (B, D) -> mu, logvar (B, Z).

    Starts from the encoder's q and runs Adam on (mu, logvar) alone, the model fixed: what an
    encoder could reach if it did not have to serve every x (Cremer, Li & Duvenaud 2018).
    """
    _require_positive_int(num_steps, "num_steps")
    _require_positive_int(num_samples, "num_samples")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must have encode(x) -> (mu, logvar), got {type(model).__name__}")
    with torch.no_grad():
        start = model.encode(x)
    _require_gaussian_model(model, x, *start)
    mu, logvar = (t.detach().clone().requires_grad_(True) for t in start)
    optimizer = torch.optim.Adam([mu, logvar], lr=lr)
    with torch.enable_grad():
        for _ in range(num_steps):
            # each x's ELBO depends on its own (mu, logvar) only: the sum optimises all at once
            neg_elbo = -_gaussian_log_weights(model, x, mu, logvar, num_samples).mean(0).sum()
            grads = torch.autograd.grad(neg_elbo, [mu, logvar])  # the model's weights untouched
            for param, grad in zip((mu, logvar), grads, strict=True):
                param.grad = grad
            optimizer.step()
    return mu.detach(), logvar.detach()


# --------------------------------------------------------------------------- a toy model


class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, sigma² I): log p(x) is known in closed form.

    q(z|x) is a diagonal Gaussian: the exact posterior's mean plus ``q_shift`` and its standard
    deviations times ``q_scale``. With orthogonal columns in W, q_scale=1 and q_shift=0 make
    q the exact posterior, so every importance weight equals p(x).
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float,
                 q_scale: float = 1.0, q_shift: float = 0.0):
        super().__init__()
        _require_tensor(W, "W", 2)
        _require_tensor(b, "b", 1)
        if b.shape[0] != W.shape[0]:
            raise ValueError(f"b must have shape ({W.shape[0]},), got {tuple(b.shape)}")
        for value, name in ((sigma, "sigma"), (q_scale, "q_scale")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.register_buffer("W", W.clone())
        self.register_buffer("b", b.clone())
        self.sigma, self.q_scale, self.q_shift = float(sigma), float(q_scale), float(q_shift)

    @property
    def x_dim(self) -> int:
        return self.W.shape[0]

    @property
    def z_dim(self) -> int:
        return self.W.shape[1]

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact p(z|x) = N(mean, cov): x (B, D) -> mean (B, Z), cov (Z, Z)."""
        eye = torch.eye(self.z_dim, dtype=self.W.dtype, device=self.W.device)
        cov = torch.linalg.inv(eye + self.W.T @ self.W / self.sigma**2)
        return (x - self.b) @ self.W @ cov / self.sigma**2, cov

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): x (B, D) -> mu (B, Z), logvar (B, Z)."""
        mean, cov = self.posterior(x)
        logvar = torch.log(torch.diagonal(cov)) + 2 * math.log(self.q_scale)
        return mean + self.q_shift, logvar.expand_as(mean)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x) = log N(x | b, W Wᵀ + sigma² I): x (B, D) -> (B,)."""
        _require_tensor(x, "x", 2)
        eye = torch.eye(self.x_dim, dtype=self.W.dtype, device=self.W.device)
        cov = self.W @ self.W.T + self.sigma**2 * eye
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) = log N(x | W z + b, sigma² I): x (B, D), z (..., B, Z) -> (..., B)."""
        return _log_normal(x, z @ self.W.T + self.b, torch.full_like(x, 2 * math.log(self.sigma)))

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for z_i ~ q(z|x), i = 1..k: x (B, D) -> (k, B)."""
        _require_tensor(x, "x", 2)
        _require_positive_int(k, "k")
        mu, logvar = self.encode(x)  # (B, Z)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), dtype=mu.dtype,
                                                       device=mu.device)  # (k, B, Z)
        log_px_given_z = self.log_likelihood(x, z)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        return log_px_given_z + log_pz - _log_normal(z, mu, logvar)

    def sample(self, n: int) -> torch.Tensor:
        """n draws x ~ p(x): (n, D)."""
        _require_positive_int(n, "n")
        z = torch.randn(n, self.z_dim, dtype=self.W.dtype, device=self.W.device)
        return z @ self.W.T + self.b + self.sigma * torch.randn(
            n, self.x_dim, dtype=self.W.dtype, device=self.W.device)
