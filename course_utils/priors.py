"""A richer prior for the VAE: a learned mixture of Gaussians p(z) = Σ_k π_k N(z; m_k, diag s_k²).

- ``diagonal_gaussian_log_density``, ``mixture_log_density``: log-densities, (B, Z) -> (B,).
- ``monte_carlo_kl``: the one-sample KL estimate log q(z|x) - log p(z), z ~ q(z|x), unbiased for
  KL(q || p) when the prior has no closed-form KL (a mixture has none).
- ``aggregate_posterior_kl``: KL(q(z) || p(z)) for the average posterior of a data set: how much
  any prior could still win with the encoder and decoder fixed.
- ``MixturePrior``: the learnable mixture (the GMM of notebook 01, now in latent space).
- ``MixturePriorVAE``: the VAE of ``course_utils.vae`` with this prior (Dilokthanakul et al.
  2016 and Tomczak & Welling 2018 study such priors; here the mixture is learned by the ELBO).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .vae import LOG_2PI, VAE, _require_dims


def _require_float(x, name: str, ndim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains nan or inf values")


def _diag_log_density(z, mu, logvar):
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def _mixture_log_density(z, logits, means, logvars):
    # log Σ_k π_k N(z; m_k, diag e^{v_k}) = logsumexp_k [log π_k + log N(z; m_k, e^{v_k})]
    log_components = _diag_log_density(z.unsqueeze(-2), means, logvars)  # (..., B, K)
    return torch.logsumexp(torch.log_softmax(logits, -1) + log_components, dim=-1)


def diagonal_gaussian_log_density(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log N(z; mu, diag e^logvar) summed over Z: (B, Z), (B, Z), (B, Z) -> (B,)."""
    for value, name in ((z, "z"), (mu, "mu"), (logvar, "logvar")):
        _require_float(value, name, 2)
    if not z.shape == mu.shape == logvar.shape:
        raise ValueError(f"z, mu and logvar must have the same shape, got {tuple(z.shape)}, "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")
    return _diag_log_density(z, mu, logvar)


def mixture_log_density(
    z: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor
) -> torch.Tensor:
    """log Σ_k softmax(logits)_k N(z; means_k, diag e^logvars_k): z (B, Z), logits (K,),
    means (K, Z), logvars (K, Z) -> (B,)."""
    _require_float(z, "z", 2)
    _require_float(logits, "logits", 1)
    _require_float(means, "means", 2)
    _require_float(logvars, "logvars", 2)
    k, z_dim = len(logits), z.shape[1]
    if means.shape != (k, z_dim) or logvars.shape != (k, z_dim):
        raise ValueError(f"means and logvars must have shape ({k}, {z_dim}) for {k} logits and z "
                         f"{tuple(z.shape)}, got {tuple(means.shape)} and {tuple(logvars.shape)}")
    return _mixture_log_density(z, logits, means, logvars)


def monte_carlo_kl(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, log_prior
) -> torch.Tensor:
    """log q(z|x) - log p(z) for z ~ q = N(mu, diag e^logvar): an unbiased estimate of
    KL(q || p) (its mean over z ~ q). z, mu, logvar (B, Z); log_prior: (B, Z) -> (B,). -> (B,)."""
    log_q = diagonal_gaussian_log_density(z, mu, logvar)
    if not callable(log_prior):
        raise TypeError(f"log_prior must be a function z (B, Z) -> (B,), got {type(log_prior)}")
    log_p = log_prior(z)
    if not isinstance(log_p, torch.Tensor) or log_p.shape != log_q.shape:
        raise ValueError(f"log_prior(z) must return a tensor of shape {tuple(log_q.shape)}")
    return log_q - log_p


@torch.no_grad()
def aggregate_posterior_kl(
    mu: torch.Tensor, logvar: torch.Tensor, log_prior, num_samples: int = 1, chunk: int = 256
) -> torch.Tensor:
    """KL(q(z) || p(z)) for the aggregate posterior q(z) = (1/N) Σ_n N(z; mu_n, diag e^logvar_n)
    of N encoded data points, by Monte Carlo: mu, logvar (N, Z) -> () (nats).

    The average KL term of the ELBO splits into the mutual information I(x; z) plus this KL
    (Hoffman & Johnson 2016, "ELBO surgery"): it is the most a better prior can save."""
    _require_dims(num_samples=num_samples, chunk=chunk)
    for value, name in ((mu, "mu"), (logvar, "logvar")):
        _require_float(value, name, 2)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    z = (mu + torch.exp(0.5 * logvar) * eps).flatten(0, 1)  # (S*N, Z), z ~ q(z)
    log_q = torch.cat([  # log q(z) = log (1/N) Σ_n N(z; mu_n, e^logvar_n), chunks of z
        torch.logsumexp(_diag_log_density(zc.unsqueeze(1), mu, logvar), dim=1)
        for zc in z.split(chunk)
    ]) - math.log(len(mu))
    log_p = log_prior(z)
    if not isinstance(log_p, torch.Tensor) or log_p.shape != log_q.shape:
        got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
        raise ValueError(f"log_prior must map z {tuple(z.shape)} to one log-density per row, "
                         f"shape {tuple(log_q.shape)}; got {got}")
    return (log_q - log_p).mean()


class MixturePrior(nn.Module):
    """p(z) = Σ_k π_k N(z; m_k, diag e^{v_k}); learnable logits (K,), means, logvars (K, Z)."""

    def __init__(self, z_dim: int, num_components: int = 10, init_spread: float = 1.0):
        super().__init__()
        _require_dims(z_dim=z_dim, num_components=num_components)
        if not init_spread > 0:
            raise ValueError(f"init_spread must be > 0, got {init_spread!r}")
        self.logits = nn.Parameter(torch.zeros(num_components))
        self.means = nn.Parameter(init_spread * torch.randn(num_components, z_dim))
        self.logvars = nn.Parameter(torch.zeros(num_components, z_dim))

    @property
    def num_components(self) -> int:
        return self.logits.shape[0]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z): z (..., Z) -> (...)."""
        return _mixture_log_density(z, self.logits, self.means, self.logvars)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n draws: pick a component k ~ π, then z ~ N(m_k, diag e^{v_k}): -> (n, Z)."""
        _require_dims(n=n)
        k = torch.multinomial(torch.softmax(self.logits, -1), n, replacement=True)
        eps = torch.randn_like(self.means[k])
        return self.means[k] + torch.exp(0.5 * self.logvars[k]) * eps


class MixturePriorVAE(VAE):
    """The Gaussian-encoder VAE with a learned mixture-of-Gaussians prior instead of N(0, I).

    KL(q(z|x) || p(z)) has no closed form for a mixture prior, so ``loss`` estimates it with the
    same sample z ~ q(z|x) the reconstruction uses (``monte_carlo_kl``).
    """

    def __init__(self, x_dim: int, z_dim: int = 2, hidden_dims: Sequence[int] = (256,),
                 num_components: int = 10, likelihood: str = "bernoulli",
                 activation: str = "relu", **kwargs):
        super().__init__(x_dim, z_dim, hidden_dims, likelihood, activation, **kwargs)
        self.prior = MixturePrior(z_dim, num_components)

    def kl_term(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log q(z|x) - log p(z) at z ~ q, an unbiased one-sample estimate of the KL: -> (B,).

        The mixture prior has no closed-form KL, so this is Kingma & Welling 2014, eq. 7.
        """
        return _diag_log_density(z, mu, logvar) - self.prior.log_prob(z)

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for z_i ~ q(z|x), i = 1..k: x (B, D) -> (k, B)."""
        self._check_x(x)
        _require_dims(k=k)
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), dtype=mu.dtype,
                                                       device=mu.device)  # (k, B, Z)
        log_q = _diag_log_density(z, mu, logvar)  # (k, B)
        return self.log_likelihood(x, z) + self.prior.log_prob(z) - log_q

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n draws z ~ p(z) (the mixture), decoded: (n, D) probabilities or means."""
        out = self.decode(self.prior.sample(n))
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out
