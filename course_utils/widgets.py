"""Interactive views (ipywidgets) of a trained VAE: an interpolation slider, a latent explorer.

Each function returns an ``ipywidgets`` box: the last expression of a Jupyter cell displays
it. Outside Jupyter (a script, a test) the box is still built and works: setting a slider's
``value`` redraws the image, and ``box.decoded`` holds the image shown (a NumPy array).
Images are PNGs drawn with matplotlib's Agg backend, so nothing depends on a live kernel.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch

_SCALE = 20  # screen pixels per image pixel for 8x8 digits; adjusted for larger images


def _require_ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - a dependency of the course
        raise ImportError("these views need ipywidgets: pip install ipywidgets") from err
    return ipywidgets


def _png(image: np.ndarray, scale: int) -> bytes:
    """An (H, W) image in [0, 1] as PNG bytes, enlarged ``scale`` times (dark ink on white)."""
    import matplotlib.image

    big = np.kron(np.clip(image, 0.0, 1.0), np.ones((scale, scale)))
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, big, cmap="gray_r", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def _scale(image_shape) -> int:
    return max(2, _SCALE * 8 // max(image_shape))


def _check_image_shape(image_shape, x_dim: int | None = None) -> tuple[int, int]:
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2
            or not all(isinstance(v, int) and v > 0 for v in image_shape)):
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    if x_dim is not None and image_shape[0] * image_shape[1] != x_dim:
        side = math.isqrt(x_dim)
        advice = f"; pass image_shape=({side}, {side})" if side * side == x_dim else ""
        raise ValueError(f"image_shape {tuple(image_shape)} has {image_shape[0] * image_shape[1]} "
                         f"pixels but the model's images have {x_dim}{advice}")
    return tuple(image_shape)


def _param(model: torch.nn.Module) -> torch.Tensor:
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "decode_mean"):
        raise TypeError("model must be a trained VAE (a module with encode and decode_mean)")
    return next(model.parameters())


def _as_image(x, image_shape, param) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.numel() != image_shape[0] * image_shape[1]:
        raise ValueError(f"expected one image of {image_shape[0] * image_shape[1]} pixels, "
                         f"got shape {tuple(x.shape)}")
    return x.reshape(1, -1).to(param)


def interpolation_slider(model, x_a, x_b, image_shape=(8, 8), steps: int = 20):
    """A slider t in [0, 1] showing x_a, the decoded (1 - t) mu(x_a) + t mu(x_b), and x_b."""
    widgets = _require_ipywidgets()
    image_shape = _check_image_shape(image_shape)
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    param = _param(model)
    x_a, x_b = _as_image(x_a, image_shape, param), _as_image(x_b, image_shape, param)
    with torch.no_grad():
        mu_a, mu_b = model.encode(torch.cat([x_a, x_b]))[0]
    scale = _scale(image_shape)
    side = dict(width=f"{image_shape[1] * scale}px", height=f"{image_shape[0] * scale}px")
    ends = [widgets.Image(value=_png(x.reshape(image_shape).cpu().numpy(), scale),
                          format="png", **side) for x in (x_a, x_b)]
    middle = widgets.Image(format="png", **side)
    slider = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=1.0 / steps,
                                 description="t", continuous_update=True)
    labels = [widgets.Label(text) for text in ("x_a", "decoded path", "x_b")]
    box = widgets.VBox([
        widgets.HBox([widgets.VBox([lab, img]) for lab, img in
                      zip(labels, (ends[0], middle, ends[1]), strict=True)]),
        slider,
    ])

    def redraw(change=None):
        t = float(slider.value)
        with torch.no_grad():
            image = model.decode_mean(((1 - t) * mu_a + t * mu_b).unsqueeze(0))
        box.decoded = image.reshape(image_shape).cpu().numpy()
        middle.value = _png(box.decoded, scale)

    slider.observe(redraw, names="value")
    box.slider, box.image = slider, middle
    redraw()
    return box


def latent_explorer(model, image_shape=(8, 8), z=None, span: float = 3.0, max_dims: int = 10):
    """One slider per latent dimension (the first ``max_dims``) and the decoded image of z."""
    widgets = _require_ipywidgets()
    image_shape = _check_image_shape(image_shape)
    param = _param(model)
    z_dim = int(model.z_dim)
    if not isinstance(span, (int, float)) or not span > 0:
        raise ValueError(f"span must be a positive number, got {span!r}")
    if not isinstance(max_dims, int) or max_dims < 1:
        raise ValueError(f"max_dims must be a positive int, got {max_dims!r}")
    z0 = torch.zeros(z_dim) if z is None else torch.as_tensor(z, dtype=torch.float32).flatten()
    if z0.shape != (z_dim,):
        raise ValueError(f"z must have {z_dim} entries (the latent size), got {tuple(z0.shape)}")
    with torch.no_grad():
        x_dim = model.decode_mean(z0.unsqueeze(0).to(param)).shape[-1]
    image_shape = _check_image_shape(image_shape, x_dim)
    sliders = [widgets.FloatSlider(value=min(max(float(z0[j]), -span), span), min=-span,
                                   max=span, step=span / 30, description=f"z{j + 1}",
                                   continuous_update=True)
               for j in range(min(z_dim, max_dims))]
    scale = _scale(image_shape)
    image = widgets.Image(format="png", width=f"{image_shape[1] * scale}px",
                          height=f"{image_shape[0] * scale}px")
    box = widgets.HBox([widgets.VBox(sliders), image])

    def redraw(change=None):
        z = z0.clone()
        z[: len(sliders)] = torch.tensor([s.value for s in sliders])
        with torch.no_grad():
            decoded = model.decode_mean(z.unsqueeze(0).to(param))
        box.z, box.decoded = z, decoded.reshape(image_shape).cpu().numpy()
        image.value = _png(box.decoded, scale)

    for slider in sliders:
        slider.observe(redraw, names="value")
    box.sliders, box.image = sliders, image
    redraw()
    return box
