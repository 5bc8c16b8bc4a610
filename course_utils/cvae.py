"""Conditional VAE and mask-aware inpainting (notebook 07).

- ``one_hot``: integer labels to one-hot rows (an exercise).
- ``CVAE``: q(z|x,y) and p(x|y,z) (Sohn, Lee & Yan 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models"); ``conditional_elbo`` is its
  per-example bound (an exercise).
- ``random_mask``, ``MaskedVAE``, ``inpaint``, ``hidden_pixel_error``: a VAE whose encoder
  sees x ⊙ mask and the mask, trained on randomly occluded images so that q(z|x̄) stays close
  to q(z|x) (Nazábal et al. 2020, "Handling incomplete heterogeneous data using VAEs", and
  the partial-VAE of Ma et al. 2019, use the same zero-imputation + mask input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .vae import (
    BernoulliDecoder,
    GaussianEncoder,
    _bernoulli_ll,
    _gaussian_kl,
    _require_beta,
    _require_dims,
    _require_float,
    require_batch,
)

# --------------------------------------------------------------------------- validation


def _require_labels(y, num_classes: int, batch_size: int | None = None) -> None:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class indices (e.g. int64), got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (B,), got {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y must lie in 0..{num_classes - 1}, got values in "
                         f"[{y.min().item()}, {y.max().item()}]")
    if batch_size is not None and len(y) != batch_size:
        raise ValueError(f"x and y must have the same batch size, got {batch_size} and {len(y)}")


def _require_x(x, x_dim: int, model=None) -> None:
    # pixels in [0, 1] for a Bernoulli decoder; any finite value for a Gaussian one (GaussianM2)
    bernoulli = getattr(model, "likelihood", "bernoulli") == "bernoulli"
    require_batch(x, x_dim, bernoulli=bernoulli, model=model)


def _require_mask(mask, x: torch.Tensor) -> None:
    _require_float(mask, "mask", min_ndim=2)
    if mask.shape != x.shape:
        raise ValueError(f"mask must have the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 (hidden) and 1 (observed)")


# --------------------------------------------------------------------------- one-hot labels


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Class indices to one-hot rows: y (B,) int -> (B, num_classes) float, on y's device."""
    _require_dims(num_classes=num_classes)
    _require_labels(y, num_classes)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    out = torch.zeros(len(y), num_classes, dtype=dtype, device=y.device)
    return out.scatter_(1, y.unsqueeze(1), 1.0)


# --------------------------------------------------------------------------- conditional VAE


class CVAE(nn.Module):
    """Conditional VAE: encoder q(z|x,y), decoder p(x|y,z), prior N(0, I), Bernoulli pixels.

    ``encode`` and ``decode`` take the condition as a one-hot matrix c (B, K), concatenated to
    the network inputs (Kingma et al. 2014, M2's p(x|y,z); Sohn et al. 2015).
    """

    def __init__(self, x_dim: int, num_classes: int = 10, z_dim: int = 2,
                 hidden_dims: Sequence[int] = (256,), activation: str = "relu"):
        super().__init__()
        _require_dims(x_dim=x_dim, num_classes=num_classes, z_dim=z_dim)
        self.x_dim, self.num_classes, self.z_dim = x_dim, num_classes, z_dim
        self.encoder = GaussianEncoder(x_dim + num_classes, hidden_dims, z_dim, activation)
        self.decoder = BernoulliDecoder(z_dim + num_classes, hidden_dims, x_dim, activation)

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x,y): x (B, D), c (B, K) one-hot -> mu (B, Z), logvar (B, Z)."""
        return self.encoder(torch.cat([x, c.to(x.dtype)], dim=-1))

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps: (B, Z), (B, Z) -> (B, Z)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """p(x|y,z): z (B, Z), c (B, K) one-hot -> logits (B, D)."""
        return self.decoder(torch.cat([z, c.to(z.dtype)], dim=-1))

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        """x (B, D), y (B,) -> x_logits (B, D), mu (B, Z), logvar (B, Z)."""
        c = one_hot(y, self.num_classes, dtype=x.dtype)
        mu, logvar = self.encode(x, c)
        return self.decode(self.reparameterize(mu, logvar), c), mu, logvar

    def elbo(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One-sample ELBO of log p(x|y): x (B, D), y (B,) -> (B,)."""
        return conditional_elbo(self, x, y)

    def loss(self, x: torch.Tensor, y: torch.Tensor, beta: float = 1.0) -> dict:
        """Negative conditional ELBO, batch means: {"loss": rec + beta * kl, "rec", "kl"}."""
        beta = _require_beta(beta)
        _require_x(x, self.x_dim, self)
        _require_labels(y, self.num_classes, len(x))
        x_logits, mu, logvar = self(x, y)
        # Sohn et al. 2015, eq. 4: -log p(x|y) <= E_q[-log p(x|y,z)] + KL(q(z|x,y) || p(z))
        rec = -_bernoulli_ll(x, x_logits)  # (B,)
        kl = _gaussian_kl(mu, logvar)  # (B,)
        return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}

    @torch.no_grad()
    def sample(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel probabilities of p(x|y,z), z ~ N(0, I) unless given: y (n,) -> (n, D)."""
        param = next(self.parameters())
        _require_labels(y, self.num_classes)
        y = y.to(param.device)
        if z is None:
            z = torch.randn(len(y), self.z_dim, dtype=param.dtype, device=param.device)
        elif z.shape != (len(y), self.z_dim):
            raise ValueError(f"z must have shape ({len(y)}, {self.z_dim}), got {tuple(z.shape)}")
        c = one_hot(y, self.num_classes, dtype=param.dtype)
        return self._decoded_mean(self.decode(z.to(param), c))

    def _decoded_mean(self, decoded) -> torch.Tensor:
        """E[x|y,z] from the decoder's output: Bernoulli logits -> probabilities."""
        return torch.sigmoid(decoded)


def conditional_elbo(model: CVAE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E_q(z|x,y)[log p(x|y,z)] - KL(q(z|x,y) || p(z)), one z sample: (B, D), (B,) -> (B,)."""
    _require_x(x, model.x_dim, model)
    _require_labels(y, model.num_classes, len(x))
    c = one_hot(y, model.num_classes, dtype=x.dtype)
    mu, logvar = model.encode(x, c)
    z = model.reparameterize(mu, logvar)
    # Sohn et al. 2015, eq. 4: the VAE bound with y given to both networks
    return _bernoulli_ll(x, model.decode(z, c)) - _gaussian_kl(mu, logvar)


@torch.no_grad()
def swap_labels(model: CVAE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Encode x with its label, decode the posterior mean with every label: (B, D) -> (B, K, D)."""
    _require_x(x, model.x_dim, model)
    _require_labels(y, model.num_classes, len(x))
    mu, _ = model.encode(x, one_hot(y, model.num_classes, dtype=x.dtype))
    rows = [model.sample(torch.full_like(y, k), mu) for k in range(model.num_classes)]
    return torch.stack(rows, dim=1)


# --------------------------------------------------------------------------- inpainting


def random_mask(batch_size: int, image_shape: tuple[int, int], size: int,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Masks hiding one size×size square at a uniform position each: -> (B, H*W) float, 1 = seen."""
    _require_dims(batch_size=batch_size, size=size)
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_shape)):
        raise ValueError(f"image_shape must be (H, W) with positive ints, got {image_shape!r}")
    h, w = image_shape
    if size > min(h, w):
        raise ValueError(f"size must be <= min(H, W) = {min(h, w)}, got {size}")
    top = torch.randint(0, h - size + 1, (batch_size, 1, 1), device=device)  # (B, 1, 1)
    left = torch.randint(0, w - size + 1, (batch_size, 1, 1), device=device)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    hidden = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return (~hidden).float().reshape(batch_size, h * w)


def fixed_mask(image_shape: tuple[int, int], region: str) -> torch.Tensor:
    """One occlusion: the "top", "bottom", "left" or "right" half, or the "center": -> (H*W,)."""
    h, w = image_shape
    mask = torch.ones(h, w)
    regions = {"top": (slice(0, h // 2), slice(None)), "bottom": (slice(h // 2, h), slice(None)),
               "left": (slice(None), slice(0, w // 2)), "right": (slice(None), slice(w // 2, w)),
               "center": (slice(h // 4, h - h // 4), slice(w // 4, w - w // 4))}
    if region not in regions:
        raise ValueError(f"region must be one of {list(regions)}, got {region!r}")
    mask[regions[region]] = 0.0
    return mask.reshape(h * w)


class MaskedVAE(nn.Module):
    """A VAE whose encoder q(z|x̄, m) sees x̄ = x ⊙ m and the mask m; decoder p(x|z), Bernoulli.

    Trained with random masks (``loss(x, random_mask(...))``) it learns to infer z from a part of
    the image; trained with ``mask=None`` (all ones) it is a plain VAE with a wider input.
    """

    def __init__(self, x_dim: int, z_dim: int = 8, hidden_dims: Sequence[int] = (256,),
                 activation: str = "relu"):
        super().__init__()
        _require_dims(x_dim=x_dim, z_dim=z_dim)
        self.x_dim, self.z_dim = x_dim, z_dim
        self.encoder = GaussianEncoder(2 * x_dim, hidden_dims, z_dim, activation)
        self.decoder = BernoulliDecoder(z_dim, hidden_dims, x_dim, activation)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x ⊙ m, m): x (B, D), mask (B, D) of 0/1 -> mu (B, Z), logvar (B, Z)."""
        return self.encoder(torch.cat([x * mask, mask], dim=-1))  # hidden pixels never leak in

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps: (B, Z), (B, Z) -> (B, Z)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p(x|z): z (B, Z) -> logits (B, D)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        """x (B, D), mask (B, D) -> x_logits (B, D), mu (B, Z), logvar (B, Z)."""
        mu, logvar = self.encode(x, mask)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def loss(self, x: torch.Tensor, mask: torch.Tensor | None = None, beta: float = 1.0) -> dict:
        """Negative ELBO of the whole x given x ⊙ mask, batch means: {"loss", "rec", "kl"}."""
        beta = _require_beta(beta)
        _require_x(x, self.x_dim, self)
        mask = torch.ones_like(x) if mask is None else mask
        _require_mask(mask, x)
        x_logits, mu, logvar = self(x, mask)
        # every pixel is reconstructed, the hidden ones too: that is what teaches the fill-in
        rec = -_bernoulli_ll(x, x_logits)  # (B,)
        kl = _gaussian_kl(mu, logvar)  # (B,)
        return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}


def masked_loss_fn(image_shape: tuple[int, int], size: int, p_mask: float = 0.75):
    """A ``fit`` loss: each image gets a random size×size hole with probability p_mask."""
    if not 0.0 <= p_mask <= 1.0:
        raise ValueError(f"p_mask must lie in [0, 1], got {p_mask}")

    def loss_fn(model: MaskedVAE, x: torch.Tensor) -> dict:
        mask = random_mask(len(x), image_shape, size, x.device).to(x.dtype)  # (B, D)
        keep = torch.rand(len(x), 1, device=x.device) >= p_mask  # some images stay whole
        return model.loss(x, torch.where(keep, torch.ones_like(mask), mask))

    return loss_fn


@torch.no_grad()
def inpaint(model: MaskedVAE, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the hidden pixels with p(x|z = E[z|x ⊙ m]), keep the seen ones: (B, D) -> (B, D)."""
    _require_x(x, model.x_dim, model)
    _require_mask(mask, x)
    mu, _ = model.encode(x, mask)
    probs = torch.sigmoid(model.decode(mu))
    return mask * x + (1 - mask) * probs


def hidden_pixel_error(x: torch.Tensor, x_filled: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hidden pixels (mask == 0) of each image: (B, D) x3 -> (B,)."""
    _require_float(x_filled, "x_filled", min_ndim=2)
    if x_filled.shape != x.shape:
        raise ValueError(f"x and x_filled must have the same shape, got {tuple(x.shape)} and "
                         f"{tuple(x_filled.shape)}")
    _require_mask(mask, x)
    hidden = 1 - mask
    if (hidden.sum(-1) == 0).any():
        raise ValueError("every mask must hide at least one pixel")
    return ((x - x_filled).pow(2) * hidden).sum(-1) / hidden.sum(-1)
