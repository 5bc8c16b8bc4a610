"""Procedural sprites: dSprites-like images with known generative factors, drawn on the fly.

Like dSprites (Matthey et al. 2017) but rendered by code, so nothing is downloaded: a white
shape (square, ellipse or heart) on black, at one of 6 scales in [0.5, 1], 40 orientations
in [0, 2π), and 32 x and 32 y positions. Images are binary, 32×32 by default (or 64×64),
and come with the factor values and indices that produced them, so disentanglement can be
measured against the truth. Rendering is vectorised: a batch of images is a few tensor ops.

``SIMPLE_SPRITES`` is a smaller world for lessons that must train in a minute: one square,
larger, anti-aliased (grey edges, so a small move changes the image smoothly), at 6 scales
and 16 × 16 positions: three factors instead of five.
"""

from __future__ import annotations

import math

import torch

SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}
IMAGE_SIZES = (32, 64)

RADIUS = 0.16  # half-size of a scale-1 shape, as a fraction of the image side
_MARGIN_PER_RADIUS = 1.45  # centres stay this many radii from the border: no shape is cut
_MAX_RADIUS = 0.3  # beyond it the margins leave (almost) no room to move
SIMPLE_SPRITES = {
    "factor_sizes": {"shape": 1, "orientation": 1, "pos_x": 16, "pos_y": 16},
    "radius": 0.22,
    "antialias": True,
}
_CHUNK = 16384  # sprites rendered at once: bounds the memory of the temporaries


def factor_values(indices: torch.Tensor, factor_sizes: dict | None = None) -> torch.Tensor:
    """Factor values from factor indices: (N, 5) int64 -> (N, 5) float32.

    Columns follow ``FACTOR_NAMES``: shape id (0, 1, 2), scale in [0.5, 1], orientation in
    [0, 2π) radians, x and y in [0, 1] (x left to right, y top to bottom).
    """
    sizes = _factor_sizes(factor_sizes)
    _check_indices(indices, sizes)
    i = indices.to(torch.float32)
    n_scale, n_angle, n_x, n_y = (sizes[k] for k in FACTOR_NAMES[1:])
    scale = 0.5 + 0.5 * i[:, 1] / max(n_scale - 1, 1)
    angle = 2 * math.pi * i[:, 2] / n_angle
    pos_x, pos_y = i[:, 3] / max(n_x - 1, 1), i[:, 4] / max(n_y - 1, 1)
    return torch.stack([i[:, 0], scale, angle, pos_x, pos_y], dim=1)


def render_sprites(values: torch.Tensor, size: int = 32, radius: float = RADIUS,
                   antialias: bool = False) -> torch.Tensor:
    """Images of the sprites with the given factor values: (N, 5) -> (N, size, size).

    Binary by default; ``antialias=True`` gives each pixel the share of its 2×2 sub-pixels
    that fall inside the shape (0, 0.25, ..., 1). ``radius``: the half-size of a scale-1 shape
    as a fraction of the side.
    """
    if not isinstance(values, torch.Tensor) or values.ndim != 2 or values.shape[1] != 5:
        raise ValueError(f"values must be a tensor of shape (N, 5), got {_shape_of(values)}")
    if not values.is_floating_point() or not torch.isfinite(values).all():
        raise ValueError("values must be finite floating-point numbers")
    if len(values) and not torch.isin(values[:, 0], torch.arange(3.0, device=values.device)).all():
        raise ValueError("the shape column of values must hold 0, 1 or 2 (square, ellipse, heart)")
    if len(values) and (values[:, 1] <= 0).any():
        raise ValueError("the scale column of values must be positive")
    if size not in IMAGE_SIZES:
        raise ValueError(f"size must be one of {IMAGE_SIZES}, got {size!r}")
    radius = _require_radius(radius)
    if not isinstance(antialias, bool):
        raise TypeError(f"antialias must be True or False, got {antialias!r}")
    values = values.to(torch.float32)
    out = torch.zeros(len(values) * size * size, device=values.device)
    for k, inside_fn in enumerate((_square, _ellipse, _heart)):
        rows = (values[:, 0] == k).nonzero().squeeze(1)
        for chunk in rows.split(_CHUNK):
            window, pixel = _render_window(values[chunk], size, inside_fn, radius, antialias)
            out[chunk.view(-1, 1) * size * size + pixel] = window
    return out.view(len(values), size, size)


def _render_window(values: torch.Tensor, size: int, inside_fn, radius: float,
                   antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Render sprites in a small window around each centre: (n, 5) -> pixels, indices (n, W*W).

    Only pixels near the centre can be inside a shape, so evaluating this window, then
    writing it at its flat pixel indices, gives the same image several times faster.
    """
    _, scale, angle, pos_x, pos_y = values.unbind(1)
    margin = radius * _MARGIN_PER_RADIUS
    half = math.ceil(margin * size) + 1
    width = 2 * half  # window side: the centre ± the largest extent of any shape
    cx = (margin + (1 - 2 * margin) * pos_x) * size  # (n,) centre in pixel units
    cy = (margin + (1 - 2 * margin) * pos_y) * size
    col0 = (cx.round().long() - half).clamp(0, size - width)
    row0 = (cy.round().long() - half).clamp(0, size - width)
    offsets = torch.arange(width, device=values.device)
    cols = col0.view(-1, 1, 1) + offsets.view(1, 1, width)  # (n, 1, W)
    rows = row0.view(-1, 1, 1) + offsets.view(1, width, 1)  # (n, W, 1)
    r = (radius * size * scale).view(-1, 1, 1)
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    # sample points within each pixel: its centre, or the centres of its four quarters
    offsets_in_pixel = (0.25, 0.75) if antialias else (0.5,)
    coverage = torch.zeros(len(values), width, width, dtype=values.dtype, device=values.device)
    for off_x in offsets_in_pixel:
        for off_y in offsets_in_pixel:
            dx = (cols + off_x - cx.view(-1, 1, 1)) / r  # relative to the sprite's centre
            dy = (rows + off_y - cy.view(-1, 1, 1)) / r
            u = cos * dx + sin * dy  # (n, W, W): coordinates in the shape's own (rotated) frame
            v = cos * dy - sin * dx
            coverage += inside_fn(u, v).to(values.dtype)
    coverage /= len(offsets_in_pixel) ** 2
    return coverage.flatten(1), (rows * size + cols).flatten(1)


def _square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.85


def _ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u / 1.2) ** 2 + (v / 0.6) ** 2 <= 1.0


def _heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # The classic implicit heart (x² + y² - 1)³ - x² y³ <= 0, flipped so it points down
    # on screen and scaled to a size comparable with the square.
    x, y = u / 0.95, -(v / 0.95) + 0.12
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def make_sprites(
    n: int = 10_000,
    size: int = 32,
    seed: int = 0,
    factor_sizes: dict | None = None,
    device: torch.device | str | None = None,
    radius: float = RADIUS,
    antialias: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random sprites: x (n, size*size) float32 in [0, 1], values (n, 5), indices (n, 5).

    Each factor index is drawn uniformly and independently (seeded: the same arguments give
    the same images). ``factor_sizes`` sub-samples factors, e.g. ``{"orientation": 8}`` keeps
    8 evenly spaced orientations over the same range. ``radius`` and ``antialias`` are as in
    ``render_sprites``; ``make_sprites(n, **SIMPLE_SPRITES)`` draws the simpler world.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if size not in IMAGE_SIZES:
        raise ValueError(f"size must be one of {IMAGE_SIZES}, got {size!r}")
    sizes = _factor_sizes(factor_sizes)
    g = torch.Generator().manual_seed(seed)
    indices = torch.stack(
        [torch.randint(sizes[k], (n,), generator=g) for k in FACTOR_NAMES], dim=1
    )
    values = factor_values(indices, sizes)
    x = render_sprites(values.to(device or "cpu"), size, radius, antialias)
    x = x.reshape(n, size * size)
    return x, values.to(device or "cpu"), indices.to(device or "cpu")


def _require_radius(radius) -> float:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (
        0 < radius <= _MAX_RADIUS
    ):
        raise ValueError(f"radius must be a number in (0, {_MAX_RADIUS}], got {radius!r}")
    return float(radius)


def _factor_sizes(factor_sizes: dict | None) -> dict:
    """The full factor sizes with the overrides applied, validated."""
    sizes = dict(FACTOR_SIZES)
    for name, count in (factor_sizes or {}).items():
        if name not in FACTOR_SIZES:
            raise ValueError(f"unknown factor {name!r}; the factors are {FACTOR_NAMES}")
        if not isinstance(count, int) or isinstance(count, bool) or not (
            1 <= count <= FACTOR_SIZES[name]
        ):
            raise ValueError(
                f"factor_sizes[{name!r}] must be an int in [1, {FACTOR_SIZES[name]}], "
                f"got {count!r}"
            )
        sizes[name] = count
    return sizes


def _check_indices(indices: torch.Tensor, sizes: dict) -> None:
    if not isinstance(indices, torch.Tensor) or indices.ndim != 2 or indices.shape[1] != 5:
        raise ValueError(f"indices must be a tensor of shape (N, 5), got {_shape_of(indices)}")
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise TypeError(f"indices must be an integer tensor, got dtype {indices.dtype}")
    high = torch.tensor([sizes[k] for k in FACTOR_NAMES], device=indices.device)
    if len(indices) and ((indices < 0).any() or (indices >= high).any()):
        raise ValueError(f"indices out of range; factor sizes are {sizes}")


def _shape_of(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    return type(value).__name__
