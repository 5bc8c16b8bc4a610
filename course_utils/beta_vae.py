"""β-VAE (Higgins et al. 2017) and controlled capacity (Burgess et al. 2018), with conv nets.

- ``beta_vae_loss``: rec + β KL (β = 0: an autoencoder with a noisy code, β = 1: the VAE).
- ``BetaLoss``: the same as a ``loss_fn`` for ``fit``, with an optional linear warm-up of β.
- ``capacity_loss``, ``capacity_schedule``, ``CapacityLoss``: rec + γ |KL - C|, C growing.
- ``ConvEncoder``, ``ConvDecoder``, ``ConvVAE``: a small convolutional VAE for the sprites
  (the architecture of Burgess et al. 2018, appendix A.1, with fewer layers for 32×32).
- ``latent_traversal``: decode a code while one latent dimension sweeps a range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .vae import VAE, bernoulli_log_likelihood, gaussian_kl

IMAGE_SIZES = (32, 64)


def _require_number(value, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}")
    return float(value)


def _loss_parts(x, x_logits, mu, logvar) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image reconstruction loss and KL, validated: -> rec (B,), kl (B,)."""
    for value, name in ((x, "x"), (x_logits, "x_logits"), (mu, "mu"), (logvar, "logvar")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if x.ndim != 2 or x.shape != x_logits.shape:
        raise ValueError(f"x and x_logits must have the same shape (B, D), got {tuple(x.shape)} "
                         f"and {tuple(x_logits.shape)}")
    if mu.ndim != 2 or mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu and logvar must have shape (B, Z) with B = {x.shape[0]}, got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")
    return -bernoulli_log_likelihood(x, x_logits), gaussian_kl(mu, logvar)


def beta_vae_loss(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
    beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """β-VAE loss, batch means: {"loss": rec + beta * kl, "rec", "kl"}; x (B, D), mu (B, Z)."""
    beta = _require_number(beta, "beta")
    rec, kl = _loss_parts(x, x_logits, mu, logvar)  # (B,), (B,)
    # Higgins et al. 2017, eq. 4: E_q[log p(x|z)] - β KL(q(z|x) || p(z)), negated, one sample
    return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}


def capacity_loss(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
    gamma: float, capacity: float,
) -> dict[str, torch.Tensor]:
    """Controlled-capacity loss: {"loss": rec + gamma * |kl - capacity|, "rec", "kl"} (batch means).

    The KL is the batch mean before the absolute value, as in the authors' setting; the
    target ``capacity`` C is in nats.
    """
    gamma = _require_number(gamma, "gamma")
    capacity = _require_number(capacity, "capacity")
    rec, kl = _loss_parts(x, x_logits, mu, logvar)
    rec, kl = rec.mean(), kl.mean()
    # Burgess et al. 2018, eq. 8: -E_q[log p(x|z)] + γ |KL(q(z|x) || p(z)) - C|
    return {"loss": rec + gamma * (kl - capacity).abs(), "rec": rec, "kl": kl}


def capacity_schedule(step: int, num_steps: int, c_max: float) -> float:
    """The target KL C after ``step`` updates: grows linearly from 0 to c_max over num_steps."""
    for value, name in ((step, "step"), (num_steps, "num_steps")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    c_max = _require_number(c_max, "c_max")
    if num_steps == 0:
        return c_max
    return c_max * min(1.0, step / num_steps)


class _StepCounter:
    """A loss whose schedule advances with training steps; ``fit`` checkpoints its step."""

    step: int

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


class BetaLoss(_StepCounter):
    """A ``loss_fn(model, x)`` for ``fit``: rec + β_t kl with β_t warmed up linearly to ``beta``.

    β_t = beta * min(1, t / warmup_steps) at training step t (KL warm-up, Sønderby et al.
    2016), which keeps a large β from collapsing every posterior onto the prior before the
    decoder has learned anything. ``warmup_steps=0``: the plain β-VAE loss from the start.
    Validation batches use the current β_t and do not advance it.
    """

    def __init__(self, beta: float, warmup_steps: int = 0):
        self.target = _require_number(beta, "beta")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.warmup_steps, self.step = warmup_steps, 0

    @property
    def beta(self) -> float:
        return self.target * capacity_schedule(self.step, self.warmup_steps, 1.0)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        beta = self.beta
        x_logits, mu, logvar = model(x)
        out = beta_vae_loss(x, x_logits, mu, logvar, beta)
        if model.training and torch.is_grad_enabled():
            self.step += 1
        out["beta"] = torch.tensor(beta, dtype=out["loss"].dtype)
        return out


class CapacityLoss(_StepCounter):
    """A ``loss_fn(model, x)`` for ``fit`` that raises C by the schedule at every training step.

    C grows linearly from 0 to ``c_max`` over ``num_steps`` steps; ``loss_fn`` (default
    ``capacity_loss``) computes the loss from (x, x_logits, mu, logvar, gamma, C).
    ``warmup_steps`` > 0 also ramps γ up from 0 (as ``BetaLoss`` ramps β), so that short runs
    learn informative codes before the KL is pinned to C. Validation batches (the model in
    eval mode, or no gradients) use the current values and do not advance them.
    """

    def __init__(self, c_max: float, num_steps: int, gamma: float = 100.0,
                 warmup_steps: int = 0, loss_fn=None):
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be a function like capacity_loss, got "
                            f"{type(loss_fn).__name__}")
        self.loss_fn = loss_fn or capacity_loss  # (x, x_logits, mu, logvar, gamma, C) -> dict
        self.c_max = _require_number(c_max, "c_max")
        self.target_gamma = _require_number(gamma, "gamma")
        capacity_schedule(0, num_steps, c_max)  # validates num_steps
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.num_steps, self.warmup_steps, self.step = num_steps, warmup_steps, 0

    @property
    def capacity(self) -> float:
        return capacity_schedule(self.step, self.num_steps, self.c_max)

    @property
    def gamma(self) -> float:
        return self.target_gamma * capacity_schedule(self.step, self.warmup_steps, 1.0)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        capacity, gamma = self.capacity, self.gamma
        x_logits, mu, logvar = model(x)
        out = self.loss_fn(x, x_logits, mu, logvar, gamma, capacity)
        if model.training and torch.is_grad_enabled():
            self.step += 1
        out["C"] = torch.tensor(capacity, dtype=out["loss"].dtype)
        return out


# --------------------------------------------------------------------------- networks


def _require_size(image_size) -> int:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size!r}")
    return int(math.log2(image_size)) - 2  # stride-2 convolutions down to 4×4


class ConvEncoder(nn.Module):
    """q(z|x) for square images: x (B, S*S) -> mu (B, Z), logvar (B, Z).

    Stride-2 4×4 convolutions down to 4×4, then two linear layers (Burgess et al. 2018, A.1).
    """

    def __init__(self, z_dim: int = 10, image_size: int = 32,
                 channels: Sequence[int] = (32, 32, 64), hidden_dim: int = 256):
        super().__init__()
        n_layers = _require_size(image_size)
        channels = _channels(channels, n_layers)
        layers: list[nn.Module] = []
        for c_in, c_out in zip((1, *channels[:-1]), channels, strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.image_size = image_size
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(channels[-1] * 16, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, 2 * z_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x.view(-1, 1, self.image_size, self.image_size))  # (B, C, 4, 4)
        mu, logvar = self.fc(h).chunk(2, dim=-1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """p(x|z), Bernoulli pixels: z (..., Z) -> logits (..., S*S); the encoder mirrored."""

    def __init__(self, z_dim: int = 10, image_size: int = 32,
                 channels: Sequence[int] = (32, 32, 64), hidden_dim: int = 256):
        super().__init__()
        n_layers = _require_size(image_size)
        channels = _channels(channels, n_layers)[::-1]
        self.image_size, self.top_channels = image_size, channels[0]
        self.fc = nn.Sequential(
            nn.Linear(z_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, channels[0] * 16),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, (*channels[1:], 1), strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.deconv = nn.Sequential(*layers[:-1])  # no ReLU on the logits

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.fc(z.reshape(-1, z.shape[-1])).view(-1, self.top_channels, 4, 4)
        return self.deconv(h).reshape(*lead, self.image_size**2)


def _channels(channels: Sequence[int], n_layers: int) -> tuple[int, ...]:
    """Channels per conv layer, the last one repeated to reach ``n_layers``."""
    channels = tuple(channels)
    if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                            for c in channels):
        raise ValueError(f"channels must be positive ints, got {channels!r}")
    return (channels + (channels[-1],) * n_layers)[:n_layers]


class ConvVAE(VAE):
    """The VAE of ``course_utils.vae`` with convolutional encoder and decoder for S×S images.

    Inputs stay flat, x (B, S*S) in [0, 1], so ``fit``, ``loss`` and the metrics work unchanged.
    """

    def __init__(self, z_dim: int = 10, image_size: int = 32,
                 channels: Sequence[int] = (32, 32, 64), hidden_dim: int = 256):
        _require_size(image_size)
        super().__init__(x_dim=image_size**2, z_dim=z_dim, hidden_dims=(1,))
        self.encoder = ConvEncoder(z_dim, image_size, channels, hidden_dim)
        self.decoder = ConvDecoder(z_dim, image_size, channels, hidden_dim)
        self.image_shape = (image_size, image_size)

    @torch.no_grad()
    def init_output_bias(self, x: torch.Tensor) -> ConvVAE:
        """Start the decoder at the data's mean brightness: bias = logit(mean of x (N, S*S)).

        With mostly black images, a decoder starting at p = 0.5 per pixel spends its first
        hundreds of steps learning the background, a plateau where the KL term can collapse
        every posterior. Returns the model.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (N, {self.x_dim})")
        p = x.float().mean().clamp(1e-4, 1 - 1e-4)
        self.decoder.deconv[-1].bias.fill_(float(torch.logit(p)))
        return self


# --------------------------------------------------------------------------- traversals


@torch.no_grad()
def latent_traversal(
    model: nn.Module, z: torch.Tensor, values: torch.Tensor, dims: Sequence[int] | None = None,
) -> torch.Tensor:
    """Decode z with one dimension at a time set to each value: z (Z,) -> (len(dims), V, D).

    Returns E[x|z] (pixel probabilities for a Bernoulli decoder), on z's device.
    """
    if not isinstance(z, torch.Tensor) or z.ndim != 1 or not z.is_floating_point():
        raise ValueError("z must be a 1-D floating-point tensor (one code)")
    if not isinstance(values, torch.Tensor) or values.ndim != 1 or len(values) < 1:
        raise ValueError("values must be a non-empty 1-D tensor")
    dims = list(range(len(z))) if dims is None else list(dims)
    if not dims or any(not 0 <= d < len(z) for d in dims):
        raise ValueError(f"dims must index the {len(z)} latent dimensions, got {dims}")
    device = next(model.parameters()).device
    codes = z.to(device).repeat(len(dims), len(values), 1)  # (dims, V, Z)
    for row, d in enumerate(dims):
        codes[row, :, d] = values.to(device, z.dtype)
    return model.decode_mean(codes).to(z.device)
