"""How good is a representation? Per-dimension KL, active units and disentanglement (MIG).

- ``kl_per_dimension``, ``active_units``: which latent dimensions carry information
  (shared with notebook 05; the implementation lives in ``course_utils.iwae``).
- ``posterior_means``: the mean code E_q[z|x] of every image, in batches.
- ``discretize``, ``discrete_entropy``, ``discrete_mutual_information``: the histogram
  estimators used by disentanglement_lib (Locatello et al. 2019).
- ``mutual_information_gap`` (the exercise of notebook 06) and ``mig_score``: the mutual
  information gap of Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs".
- ``fit_digit_reader``, ``read_digits``: a small classifier trained on labelled images that
  reads which digit a generated image shows (the claims of notebooks 04, 07 and 08 use it).
"""

from __future__ import annotations

import torch

from .iwae import active_units, kl_per_dimension

__all__ = [
    "active_units",
    "discrete_entropy",
    "discrete_mutual_information",
    "discretize",
    "fit_digit_reader",
    "kl_per_dimension",
    "mig_score",
    "mutual_information_gap",
    "posterior_means",
    "stroke_style",
    "read_digits",
]

NUM_BINS = 20  # disentanglement_lib's default for MIG


def _require_matrix(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, columns), got {tuple(x.shape)}")


def _require_integer(x: torch.Tensor, name: str) -> None:
    _require_matrix(x, name)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (discrete values), got {x.dtype}")


def _require_num_bins(num_bins) -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")


def posterior_means(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The mean code E_q[z|x] of each image, without gradients: x (N, D) -> (N, Z) on x's device."""
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must have encode(x) -> (mu, logvar), got {type(model).__name__}")
    _require_matrix(x, "x")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        mu = torch.cat([model.encode(xb.to(device))[0] for xb in x.split(batch_size)])
    model.train(was_training)
    return mu.to(x.device)


def discretize(z: torch.Tensor, num_bins: int = NUM_BINS) -> torch.Tensor:
    """Equal-width histogram bin of each value, per column: (N, Z) float -> (N, Z) int64."""
    _require_matrix(z, "z")
    _require_num_bins(num_bins)
    if not z.is_floating_point():
        raise TypeError(f"z must be a floating-point tensor, got {z.dtype}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains nan or inf values")
    lo, hi = z.amin(0), z.amax(0)
    width = (hi - lo) / num_bins
    width = torch.where(width > 0, width, torch.ones_like(width))  # a constant column: one bin
    return ((z - lo) / width).floor().clamp(0, num_bins - 1).long()


def _relabel(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Map the values of one discrete column to 0..n_values-1: (N,) -> (N,), n_values."""
    values, labels = torch.unique(x, return_inverse=True)
    return labels, len(values)


def discrete_entropy(factors: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each column's empirical distribution: (N, K) int -> (K,) float64, CPU."""
    _require_integer(factors, "factors")
    out = []
    for column in factors.cpu().T:
        labels, n_values = _relabel(column)
        p = torch.bincount(labels, minlength=n_values).double() / len(labels)
        out.append(-(p * p.log()).sum())  # every p > 0: each value occurs
    return torch.stack(out)


def discrete_mutual_information(codes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Mutual information in nats of each code with each factor: (N, Z), (N, K) -> (Z, K) on CPU.

    Histogram (plug-in) estimate from the joint counts, like sklearn's mutual_info_score.
    """
    _require_integer(codes, "codes")
    _require_integer(factors, "factors")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes and factors must have the same N, got {tuple(codes.shape)} and "
                         f"{tuple(factors.shape)}")
    codes, factors = codes.cpu(), factors.cpu()  # counting is fast on CPU, and float64 works
    n = codes.shape[0]
    factor_labels = [_relabel(f) for f in factors.T]
    mi = torch.zeros(codes.shape[1], factors.shape[1], dtype=torch.float64)
    for j, code in enumerate(codes.T):
        a, n_a = _relabel(code)
        for k, (b, n_b) in enumerate(factor_labels):
            joint = torch.bincount(a * n_b + b, minlength=n_a * n_b).double().view(n_a, n_b) / n
            outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)  # p(a) p(b)
            nz = joint > 0
            # I(a; b) = Σ p(a, b) log p(a, b) / (p(a) p(b))
            mi[j, k] = (joint[nz] * (joint[nz] / outer[nz]).log()).sum().clamp(min=0)
    return mi


def mutual_information_gap(mi: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
    """MIG from the mutual information of each code with each factor: mi (Z, K), entropy (K,) -> ().

    For each factor k, the gap between the largest and second-largest I(z_j; v_k) over the
    codes j, divided by H(v_k) so it lies in [0, 1]; then the mean over factors
    (Chen et al. 2018, eq. 6).
    """
    for value, name in ((mi, "mi"), (entropy, "entropy")):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if mi.ndim != 2 or mi.shape[0] < 2:
        raise ValueError(f"mi must have shape (Z, K) with Z >= 2 codes, got {tuple(mi.shape)}")
    if entropy.shape != (mi.shape[1],):
        raise ValueError(f"entropy must have shape ({mi.shape[1]},) (one per factor), got "
                         f"{tuple(entropy.shape)}")
    if not (torch.isfinite(mi).all() and torch.isfinite(entropy).all()):
        raise ValueError("mi and entropy must be finite")
    if (entropy <= 0).any():
        raise ValueError("every factor must vary (entropy > 0); drop constant factors")
    top2 = mi.topk(2, dim=0).values  # (2, K): best and second-best code for each factor
    return ((top2[0] - top2[1]) / entropy).mean()


def mig_score(z: torch.Tensor, factors: torch.Tensor, num_bins: int = NUM_BINS) -> torch.Tensor:
    """MIG of codes z against discrete factors, as in disentanglement_lib: (N, Z), (N, K) -> () CPU.

    Each code dimension is cut into ``num_bins`` equal-width bins; constant factors are dropped.
    """
    _require_matrix(z, "z")
    _require_integer(factors, "factors")
    if z.shape[0] != factors.shape[0]:
        raise ValueError(f"z and factors must have the same N, got {tuple(z.shape)} and "
                         f"{tuple(factors.shape)}")
    if z.shape[1] < 2:
        raise ValueError(f"MIG needs at least 2 code dimensions, got z of shape {tuple(z.shape)}")
    varying = factors.amax(0) > factors.amin(0)  # constant factors carry no information
    if not varying.any():
        raise ValueError("every factor is constant; MIG is undefined")
    factors = factors[:, varying]
    mi = discrete_mutual_information(discretize(z.detach(), num_bins), factors)
    return mutual_information_gap(mi, discrete_entropy(factors))


def fit_digit_reader(x: torch.Tensor, y: torch.Tensor, num_steps: int = 1500,
                     seed: int = 0) -> torch.nn.Module:
    """An MLP (D -> 256 -> K) trained on labelled images x (N, D), y (N,); in eval mode."""
    from .ssvae import fit_classifier
    from .vae import MLP

    generator_state = torch.random.get_rng_state()  # leave the caller's random stream alone
    torch.manual_seed(seed)
    reader = MLP(x.shape[1], (256,), int(y.max()) + 1).to(x.device)
    fit_classifier(reader, x, y, num_steps=num_steps, batch_size=100)
    torch.random.set_rng_state(generator_state)
    return reader.eval()


@torch.no_grad()
def read_digits(reader: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The class the reader sees in each image: images (..., D) pixel probabilities -> (...,)."""
    flat = images.reshape(-1, images.shape[-1])
    return reader(flat.to(next(reader.parameters()))).argmax(-1).reshape(images.shape[:-1]).cpu()


def stroke_style(images: torch.Tensor, image_shape: tuple[int, int]) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
    """Ink (total intensity) and slant (lean of the strokes, + to the right) of each image.

    images (N, H * W) pixel intensities -> ink (N,), slant (N,): the regression slope of the
    column on the row, from the image's second moments (0 for an upright digit).
    """
    im = images.detach().reshape(-1, *image_shape).cpu().float()
    rows = torch.arange(image_shape[0], dtype=im.dtype).view(1, -1, 1)
    cols = torch.arange(image_shape[1], dtype=im.dtype).view(1, 1, -1)
    ink = im.sum((1, 2)).clamp_min(1e-8)
    r = rows - (im * rows).sum((1, 2), keepdim=True) / ink.view(-1, 1, 1)
    c = cols - (im * cols).sum((1, 2), keepdim=True) / ink.view(-1, 1, 1)
    return ink, -(im * r * c).sum((1, 2)) / (im * r * r).sum((1, 2)).clamp_min(1e-8)
