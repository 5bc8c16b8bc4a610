"""The variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

- ``reparameterize``, ``gaussian_kl``, ``bernoulli_log_likelihood``,
  ``gaussian_log_likelihood``, ``negative_elbo``: the pieces of the loss (the exercises of
  notebook 04), each validating its inputs.
- ``MLP``, ``GaussianEncoder``, ``BernoulliDecoder``, ``GaussianDecoder``: the networks.
- ``VAE``: ``encode``, ``reparameterize``, ``decode``, ``forward`` like pytorch/examples
  ``vae/main.py``, plus ``loss`` (a dict of parts), ``log_weights`` (for IWAE) and ``sample``.
- ``score_function_gradient``, ``reparameterization_gradient``: per-sample gradient
  estimates of E_q[f(z)], to compare their variance.
- ``kl_warmup``: the linear KL warm-up schedule (Sønderby et al. 2016).
- ``free_bits_kl``, ``free_bits_loss``: the KL with a floor per unit (Kingma et al. 2016),
  a second cure for collapse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
_LIKELIHOODS = ("bernoulli", "gaussian")


# --------------------------------------------------------------------------- validation


def _require_float(x, name: str, min_ndim: int = 1) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got {tuple(x.shape)}")


def _require_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains nan or inf values")


def require_batch(x, x_dim: int, *, bernoulli: bool, name: str = "x", model=None) -> None:
    """A batch a model can train on: float (B, x_dim), B >= 1, finite, in [0, 1] for a
    Bernoulli decoder (whose loss has no lower bound outside it), and of the dtype and on the
    device of ``model``'s parameters when given."""
    _require_float(x, name, min_ndim=2)
    param = next(iter(model.parameters()), None) if model is not None else None
    if param is not None and x.dtype != param.dtype:
        raise TypeError(f"{name} is {x.dtype} but the model's parameters are {param.dtype}; "
                        f"convert one of them, e.g. {name}.to({param.dtype})")
    if param is not None and x.device != param.device:
        raise ValueError(f"{name} is on {x.device} but the model is on {param.device}; move "
                         f"one of them, e.g. {name}.to(device)")
    if x.ndim != 2 or x.shape[1] != x_dim:
        raise ValueError(f"{name} must have shape (B, {x_dim}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one "
                         "image")
    _require_finite(x, name)
    if bernoulli:
        lo, hi = x.min().item(), x.max().item()
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name} must lie in [0, 1] for a Bernoulli decoder (pixels are probabilities), "
                f"got values in [{lo:.3g}, {hi:.3g}]; scale the images first, e.g. x / x.max()")


def _require_same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")


def _require_broadcast(*shapes: torch.Size, names: str) -> None:
    try:
        torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(f"{names} do not broadcast: {[tuple(s) for s in shapes]}") from None


def _require_beta(beta) -> float:
    if isinstance(beta, torch.Tensor) and beta.numel() == 1:
        beta = float(beta)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta must be a number, got {type(beta).__name__}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    return float(beta)


# --------------------------------------------------------------------------- the loss pieces
# Unchecked versions (leading underscore) are used inside the model, where the inputs come from
# our own networks; the public versions validate first.


def _gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    # Kingma & Welling 2014, appendix B: -KL = 1/2 Σ_j (1 + log σ_j² - μ_j² - σ_j²)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def _bernoulli_ll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    # log Bern(x | σ(l)) = x log σ(l) + (1 - x) log(1 - σ(l)), computed stably from the logits
    x, logits = torch.broadcast_tensors(x, logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _gaussian_ll(x: torch.Tensor, mean: torch.Tensor, logvar) -> torch.Tensor:
    # log N(x | m, e^v) = -1/2 (log 2π + v + (x - m)² e^{-v}), summed over D
    if not isinstance(logvar, torch.Tensor):
        logvar = torch.tensor(float(logvar), dtype=mean.dtype, device=mean.device)
    log_density = -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))
    shape = torch.broadcast_shapes(x.shape, mean.shape, logvar.shape)
    return log_density.expand(shape).sum(-1)


def _standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) from torch's RNG: (B, Z), (B, Z) -> (B, Z)."""
    _require_float(mu, "mu")
    _require_float(logvar, "logvar")
    _require_same_shape(mu, logvar, "mu and logvar")
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)), summed over the latent dimensions: (B, Z) -> (B,)."""
    _require_float(mu, "mu")
    _require_float(logvar, "logvar")
    _require_same_shape(mu, logvar, "mu and logvar")
    _require_finite(mu, "mu")
    _require_finite(logvar, "logvar")
    return _gaussian_kl(mu, logvar)


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Σ_d log Bern(x_d | sigmoid(logits_d)) for x in [0, 1]: (B, D), (B, D) -> (B,)."""
    _require_float(x, "x")
    _require_float(logits, "logits")
    _require_broadcast(x.shape, logits.shape, names="x and logits")
    _require_finite(x, "x")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1] for a Bernoulli likelihood, got values in "
                         f"[{x.min().item():.3g}, {x.max().item():.3g}]")
    if torch.isnan(logits).any():
        raise ValueError("logits contain nan values")
    return _bernoulli_ll(x, logits)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar) -> torch.Tensor:
    """Σ_d log N(x_d | mean_d, e^logvar_d), logvar a tensor or a float: (B, D) -> (B,)."""
    _require_float(x, "x")
    _require_float(mean, "mean")
    if isinstance(logvar, torch.Tensor):
        _require_float(logvar, "logvar", min_ndim=0)
        _require_broadcast(x.shape, mean.shape, logvar.shape, names="x, mean and logvar")
        _require_finite(logvar, "logvar")
    elif isinstance(logvar, bool) or not isinstance(logvar, (int, float)):
        raise TypeError(f"logvar must be a tensor or a float, got {type(logvar).__name__}")
    elif not math.isfinite(logvar):
        raise ValueError(f"logvar must be finite, got {logvar}")
    else:
        _require_broadcast(x.shape, mean.shape, names="x and mean")
    _require_finite(x, "x")
    _require_finite(mean, "mean")
    return _gaussian_ll(x, mean, logvar)


def negative_elbo(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
    beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """-ELBO, Bernoulli decoder, batch means: {"loss": rec + beta * kl, "rec", "kl"} (scalars)."""
    beta = _require_beta(beta)
    _require_float(x, "x", min_ndim=2)
    _require_same_shape(x, x_logits, "x and x_logits")
    _require_same_shape(mu, logvar, "mu and logvar")
    if mu.ndim < 1 or mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu and x must have the same batch size, got {tuple(mu.shape)} and "
                         f"{tuple(x.shape)}")
    # Kingma & Welling 2014, eq. 10: ELBO = -KL(q(z|x) || p(z)) + E_q[log p(x|z)], one sample
    rec = -bernoulli_log_likelihood(x, x_logits)  # (B,)
    kl = gaussian_kl(mu, logvar)  # (B,)
    return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}


# --------------------------------------------------------------------------- gradient estimators


def _check_estimator_inputs(f, mu, logvar, num_samples) -> None:
    if not callable(f):
        raise TypeError(f"f must be a function of z (S, Z) -> (S,), got {type(f).__name__}")
    _require_float(mu, "mu")
    _require_float(logvar, "logvar")
    _require_same_shape(mu, logvar, "mu and logvar")
    if mu.ndim != 1:
        raise ValueError(f"mu and logvar must have shape (Z,), got {tuple(mu.shape)}")
    _require_dims(num_samples=num_samples)


def score_function_gradient(f, mu: torch.Tensor, logvar: torch.Tensor, num_samples: int):
    """One score-function (REINFORCE) estimate per sample z_s ~ q of ∇_{mu, logvar} E_q[f(z)].

    q = N(mu, diag e^logvar); f: (S, Z) -> (S,); mu, logvar (Z,) -> (grad_mu, grad_logvar),
    each (S, Z). Williams 1992: ∇ E_q[f] = E_q[f(z) ∇ log q(z)], with
    ∇_mu log q = (z - mu) / σ² and ∇_logvar log q = ((z - mu)² / σ² - 1) / 2.
    """
    _check_estimator_inputs(f, mu, logvar, num_samples)
    with torch.no_grad():
        mu, logvar = mu.detach(), logvar.detach()
        var = logvar.exp()
        z = mu + var.sqrt() * torch.randn((num_samples, *mu.shape), dtype=mu.dtype,
                                          device=mu.device)
        fz = f(z).reshape(num_samples, 1)  # (S, 1)
        return fz * (z - mu) / var, fz * 0.5 * ((z - mu).pow(2) / var - 1.0)


def reparameterization_gradient(f, mu: torch.Tensor, logvar: torch.Tensor, num_samples: int):
    """One pathwise estimate per sample z_s = mu + σ eps_s of ∇_{mu, logvar} E_q[f(z)].

    f: (S, Z) -> (S,) differentiable; mu, logvar (Z,) -> (grad_mu, grad_logvar), each (S, Z):
    ∇_mu f(z_s) = f'(z_s) and ∇_logvar f(z_s) = f'(z_s) σ eps_s / 2 (Kingma & Welling 2014).
    """
    _check_estimator_inputs(f, mu, logvar, num_samples)
    std = torch.exp(0.5 * logvar.detach())
    eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    with torch.enable_grad():
        z = (mu.detach() + std * eps).requires_grad_(True)
        (grad_z,) = torch.autograd.grad(f(z).sum(), z)  # row s depends on z_s only
    return grad_z, grad_z * 0.5 * std * eps


def kl_warmup(epoch: int, warmup_epochs: int) -> float:
    """Linear KL warm-up (Sønderby et al. 2016): beta = min(1, epoch / warmup_epochs)."""
    for name, value in (("epoch", epoch), ("warmup_epochs", warmup_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if warmup_epochs == 0:
        return 1.0
    return min(1.0, epoch / warmup_epochs)


def _require_free_bits(free_bits) -> float:
    if isinstance(free_bits, bool) or not isinstance(free_bits, (int, float)) or not (
            math.isfinite(free_bits) and free_bits >= 0):
        raise ValueError(f"free_bits must be a number of nats >= 0, got {free_bits!r}")
    return float(free_bits)


def free_bits_kl(kl_units: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Σ_j max(λ, mean over the batch of KL_j): kl_units (B, Z) -> () (Kingma et al. 2016).

    Below λ nats a unit's KL costs nothing more (its gradient is zero), so the optimiser has
    no reason to push it all the way back to the prior.
    """
    free_bits = _require_free_bits(free_bits)
    _require_float(kl_units, "kl_units", min_ndim=2)
    if kl_units.ndim != 2:
        raise ValueError(f"kl_units must have shape (B, Z), got {tuple(kl_units.shape)}")
    # Kingma et al. 2016, appendix C.8: the floor applies to the batch average of each unit
    return kl_units.mean(0).clamp_min(free_bits).sum()


def free_bits_loss(model, x: torch.Tensor, free_bits: float) -> dict[str, torch.Tensor]:
    """A ``loss_fn`` for ``fit``: rec + free-bits KL; "kl" reports the true KL (batch means)."""
    free_bits = _require_free_bits(free_bits)
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    rec = -model.log_likelihood(x, z)  # (B,)
    kl_units = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, Z), per unit
    objective = rec.mean() + free_bits_kl(kl_units, free_bits)
    return {"loss": objective, "rec": rec.mean(), "kl": kl_units.sum(-1).mean()}


# --------------------------------------------------------------------------- networks


def _require_dims(**dims) -> None:
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class MLP(nn.Sequential):
    """Linear layers with an activation between them: (..., in_dim) -> (..., out_dim)."""

    def __init__(
        self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, activation: str = "relu"
    ):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}, got {activation!r}")
        if isinstance(hidden_dims, int):
            hidden_dims = (hidden_dims,)
        hidden_dims = tuple(hidden_dims)
        _require_dims(in_dim=in_dim, out_dim=out_dim)
        for h in hidden_dims:
            _require_dims(hidden_dim=h)
        dims = (in_dim, *hidden_dims, out_dim)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu(x), diag exp(logvar(x))): forward(x (B, D)) -> (mu, logvar), each (B, Z)."""

    def __init__(self, x_dim: int, hidden_dims: Sequence[int], z_dim: int, activation="relu"):
        super().__init__()
        self.net = MLP(x_dim, hidden_dims, 2 * z_dim, activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar


class BernoulliDecoder(nn.Module):
    """p(x|z) = Π_d Bern(x_d | sigmoid(logits_d(z))): forward(z (B, Z)) -> logits (B, D)."""

    def __init__(self, z_dim: int, hidden_dims: Sequence[int], x_dim: int, activation="relu"):
        super().__init__()
        self.net = MLP(z_dim, hidden_dims, x_dim, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class GaussianDecoder(nn.Module):
    """p(x|z) = N(mean(z), diag exp(logvar)): forward(z (B, Z)) -> (mean, logvar), each (B, D).

    ``logvar=None`` learns one log-variance per pixel, ``"shared"`` one for all pixels (the
    σ-VAE of Rybkin et al. 2021); a float fixes it (e.g. 0.0: unit variance).
    """

    def __init__(self, z_dim: int, hidden_dims: Sequence[int], x_dim: int, activation="relu",
                 logvar: float | str | None = None):
        super().__init__()
        self.net = MLP(z_dim, hidden_dims, x_dim, activation)
        if logvar is None or logvar == "shared":
            self.logvar = nn.Parameter(torch.zeros(x_dim if logvar is None else 1))
        elif isinstance(logvar, str) or isinstance(logvar, bool):
            raise ValueError(f"logvar must be None, 'shared' or a float, got {logvar!r}")
        else:
            if not math.isfinite(float(logvar)):
                raise ValueError(f"logvar must be finite, got {logvar}")
            self.register_buffer("logvar", torch.full((x_dim,), float(logvar)))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.net(z)
        return mean, self.logvar.expand_as(mean)


# --------------------------------------------------------------------------- the model


class VAE(nn.Module):
    """A VAE with a Gaussian encoder, a N(0, I) prior and a Bernoulli or Gaussian decoder.

    ``self.encoder`` (x -> (mu, logvar)) and ``self.decoder`` (z -> logits, or (mean, logvar))
    are plain modules: a subclass may replace them (e.g. with convolutional nets).
    """

    def __init__(self, x_dim: int, z_dim: int = 2, hidden_dims: Sequence[int] = (256,),
                 likelihood: str = "bernoulli", activation: str = "relu",
                 decoder_logvar: float | str | None = None):
        super().__init__()
        _require_dims(x_dim=x_dim, z_dim=z_dim)
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
        self._x_dim, self._z_dim, self.likelihood = x_dim, z_dim, likelihood
        self.encoder = GaussianEncoder(x_dim, hidden_dims, z_dim, activation)
        if likelihood == "bernoulli":
            self.decoder = BernoulliDecoder(z_dim, hidden_dims, x_dim, activation)
        else:
            self.decoder = GaussianDecoder(z_dim, hidden_dims, x_dim, activation, decoder_logvar)

    @property
    def x_dim(self) -> int:
        return self._x_dim

    @property
    def z_dim(self) -> int:
        return self._z_dim

    def _check_x(self, x) -> None:
        require_batch(x, self.x_dim, bernoulli=self.likelihood == "bernoulli", model=self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): x (B, D) -> mu (B, Z), logvar (B, Z)."""
        return self.encoder(x)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps: (B, Z), (B, Z) -> (B, Z)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., Z) -> logits (Bernoulli) or means (Gaussian) of p(x|z), (..., D)."""
        out = self.decoder(z)
        return out if self.likelihood == "bernoulli" else out[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, D) -> x_logits (B, D) (means for a Gaussian decoder), mu (B, Z), logvar (B, Z)."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: x (B, D), z (..., B, Z) -> (..., B)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return _bernoulli_ll(x, out)
        return _gaussian_ll(x, *out)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative ELBO, batch means: {"loss": rec + beta * kl, "rec", "kl"} (scalars)."""
        beta = _require_beta(beta)
        self._check_x(x)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        rec = -self.log_likelihood(x, z)  # (B,), one-sample reconstruction term
        kl = self.kl_term(z, mu, logvar)  # (B,)
        return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}

    def kl_term(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) in closed form (Kingma & Welling 2014, eq. 10): -> (B,).

        z (B, Z), the sample of q, is unused here; a prior without a closed-form KL uses it.
        """
        return _gaussian_kl(mu, logvar)

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for z_i ~ q(z|x), i = 1..k: x (B, D) -> (k, B)."""
        self._check_x(x)
        _require_dims(k=k)
        mu, logvar = self.encode(x)  # (B, Z)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = mu + std * eps  # (k, B, Z)
        # Burda et al. 2016, eq. 8: w_i = p(x, z_i) / q(z_i | x)
        log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)  # (k, B)
        log_prior = _standard_normal_log_density(z)  # (k, B)
        return self.log_likelihood(x, z) + log_prior - log_q

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: z (..., Z) -> pixel probabilities (Bernoulli) or means (Gaussian), (..., D)."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n draws z ~ N(0, I), decoded: (n, D) probabilities (Bernoulli) or means (Gaussian)."""
        _require_dims(n=n)
        param = next(self.parameters())
        return self.decode_mean(torch.randn(n, self.z_dim, dtype=param.dtype,
                                            device=param.device))
