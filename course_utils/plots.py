"""Figures used by the notebooks: image grids, 2-D scatters, loss curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def image_grid(images, image_shape: tuple[int, int], nrow: int = 10, pad: int = 1) -> np.ndarray:
    """Tile flat images (N, H*W) or (N, H, W) into one (rows*(H+pad), nrow*(W+pad)) array."""
    images = _to_numpy(images)
    h, w = image_shape
    if images.ndim in (2, 3) and len(images) == 0:
        raise ValueError(f"no images to show: got an empty batch of shape {images.shape}")
    if images.ndim not in (2, 3) or images[0].size != h * w:
        raise ValueError(
            f"images must have shape (N, {h * w}) or (N, {h}, {w}), got {images.shape}"
        )
    n = len(images)
    images = images.reshape(n, h, w)
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    grid = np.ones((rows * (h + pad) - pad, ncol * (w + pad) - pad)) * np.nan
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return grid


def show_images(
    images, image_shape: tuple[int, int] = (8, 8), nrow: int = 10, title: str | None = None,
    ax=None, cmap: str = "gray_r",
):
    """Show flat images (N, H*W) in [0, 1] as a grid; returns the matplotlib Axes."""
    grid = image_grid(images, image_shape, nrow)
    if ax is None:
        rows, cols = grid.shape
        _, ax = plt.subplots(figsize=(min(12, 0.25 * cols / image_shape[1] * 4 + 1),
                                      min(12, 0.25 * rows / image_shape[0] * 4 + 0.6)))
    cm = plt.get_cmap(cmap).with_extremes(bad="0.8")  # padding between images: grey frame
    ax.imshow(grid, cmap=cm, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------- training curves


def plot_history(history, parts=None, axes=None):
    """Loss curves of a ``train.History``, one panel per loss part (train and valid)."""
    parts = list(parts) if parts is not None else list(history.train)
    missing = [p for p in parts if p not in history.train]
    if not parts or missing:
        raise ValueError(f"unknown loss parts {missing}; the history has {list(history.train)}")
    if axes is None:
        _, axes = plt.subplots(1, len(parts), figsize=(3.6 * len(parts), 3), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    for ax, part in zip(axes, parts, strict=False):
        ax.plot(history.epochs, history.train[part], label="train")
        if history.valid.get(part):
            ax.plot(history.valid_epochs, history.valid[part], "o-", ms=3, label="valid")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{part} (per example)")
        ax.set_title(part)
        ax.legend()
    plt.tight_layout()
    return axes


# --------------------------------------------------------------------------- latent spaces


def _decoder_fn(model_or_decode):
    """A function z (N, Z) -> images (N, D) in [0, 1] from a VAE (decode_mean) or a callable."""
    decode = getattr(model_or_decode, "decode_mean", model_or_decode)
    if not callable(decode):
        raise TypeError("expected a VAE (with decode_mean) or a function z -> images")
    param = next(model_or_decode.parameters(), None) if hasattr(
        model_or_decode, "parameters") else None

    @torch.no_grad()
    def images(z: torch.Tensor) -> torch.Tensor:
        if param is not None:
            z = z.to(device=param.device, dtype=param.dtype)
        return decode(z).detach().cpu()

    return images


def latent_grid(n: int = 15, quantile: float = 0.95) -> torch.Tensor:
    """Points of a 2-D latent grid, (n*n, 2), at Gaussian quantiles (Kingma & Welling fig. 4)."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not 0.5 < quantile < 1:
        raise ValueError(f"quantile must be in (0.5, 1), got {quantile}")
    p = torch.linspace(1 - quantile, quantile, n, dtype=torch.float64)
    values = torch.distributions.Normal(0.0, 1.0).icdf(p).float()
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # top row: largest z2
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def plot_latent_map(model_or_decode, image_shape: tuple[int, int], n: int = 15,
                    quantile: float = 0.95, ax=None, title: str | None = None):
    """Decoded images on a grid of a 2-D latent space (z1 right, z2 up); returns the Axes."""
    z = latent_grid(n, quantile)
    images = _decoder_fn(model_or_decode)(z)
    if images.shape[0] != n * n:
        raise ValueError(f"the decoder returned {images.shape[0]} images for {n * n} points")
    grid = image_grid(images, image_shape, nrow=n, pad=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    cm = plt.get_cmap("gray_r").with_extremes(bad="white")
    ax.imshow(grid, cmap=cm, vmin=0.0, vmax=1.0, interpolation="nearest")
    h, w = image_shape
    values = z[:n, 0].numpy()  # z1 along a row; z2 = values reversed down the rows
    ticks = np.linspace(0, n - 1, min(n, 5)).round().astype(int)
    ax.set_xticks(ticks * (w + 1) + (w - 1) / 2, [f"{values[i]:.1f}" for i in ticks])
    ax.set_yticks(ticks * (h + 1) + (h - 1) / 2, [f"{values[n - 1 - i]:.1f}" for i in ticks])
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title(title or "decoded images over the latent space")
    return ax


def plot_latent_scatter(z, y=None, ax=None, title: str | None = None, s: float = 6.0):
    """Scatter of 2-D latent codes z (N, 2), coloured by class y (N,) if given; returns the Axes."""
    z = _to_numpy(z)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"z must have shape (N, 2) (or (N, Z) with Z >= 2), got {z.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    if y is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=0.6)
    else:
        y = _to_numpy(y)
        if y.shape != (len(z),):
            raise ValueError(f"y must have shape ({len(z)},), got {y.shape}")
        cmap = plt.get_cmap("tab10")
        for k in np.unique(y):
            keep = y == k
            ax.scatter(z[keep, 0], z[keep, 1], s=s, alpha=0.7, color=cmap(int(k) % 10),
                       label=str(k))
        ax.legend(title="class", markerscale=2.5, fontsize="small", loc="center left",
                  bbox_to_anchor=(1.0, 0.5))
    dims = "" if z.shape[1] == 2 else f" (first 2 of {z.shape[1]} dims)"
    ax.set_xlabel("z₁" + dims)
    ax.set_ylabel("z₂")
    ax.set_title(title or "latent codes")
    return ax


def plot_interpolation(model, x_a, x_b, image_shape: tuple[int, int], steps: int = 10,
                       ax=None, title: str | None = None):
    """x_a, the decoded (1 - t) mu(x_a) + t mu(x_b) for t in [0, 1], then x_b; returns the Axes."""
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    decode = _decoder_fn(model)
    param = next(model.parameters())
    with torch.no_grad():
        x = torch.stack([torch.as_tensor(x_a), torch.as_tensor(x_b)]).to(param)
        mu = model.encode(x.reshape(2, -1))[0]
    t = torch.linspace(0, 1, steps, dtype=mu.dtype, device=mu.device).unsqueeze(1)
    images = decode((1 - t) * mu[0] + t * mu[1])
    row = torch.cat([x[:1].reshape(1, -1).cpu(), images, x[1:].reshape(1, -1).cpu()])
    ax = show_images(row, image_shape, nrow=steps + 2, ax=ax,
                     title=title or "x_a | decoded path from mu(x_a) to mu(x_b) | x_b")
    return ax


# --------------------------------------------------------------------------- 2-D Gaussians


def covariance_ellipse(mean, cov, ax=None, n_std: float = 2.0, **kwargs):
    """Draw the n_std contour of a 2-D Gaussian N(mean (2,), cov (2, 2)); returns the line."""
    mean, cov = _to_numpy(mean).astype(float), _to_numpy(cov).astype(float)
    if mean.shape != (2,) or cov.shape != (2, 2):
        raise ValueError(f"expected mean (2,) and cov (2, 2), got {mean.shape} and {cov.shape}")
    values, vectors = np.linalg.eigh(cov)
    if values.min() <= 0:
        raise ValueError("cov must be positive definite")
    angle = np.linspace(0, 2 * np.pi, 100)
    circle = np.stack([np.cos(angle), np.sin(angle)])  # (2, 100)
    points = mean[:, None] + n_std * vectors @ (np.sqrt(values)[:, None] * circle)
    ax = ax if ax is not None else plt.gca()
    (line,) = ax.plot(points[0], points[1], **kwargs)
    return line


# --------------------------------------------------------------------------- 2-D densities


def density_grid(log_density, extent=(-4.0, 4.0, -4.0, 4.0), n: int = 200) -> np.ndarray:
    """exp(log_density(z)) on an n x n grid over extent (x0, x1, y0, y1): rows follow z₂.

    ``log_density`` maps z (n², 2) float64 -> (n²,); the result is normalised to sum to 1."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    x0, x1, y0, y1 = extent
    zx, zy = torch.linspace(x0, x1, n, dtype=torch.float64), torch.linspace(y0, y1, n,
                                                                              dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(zx, zy, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        log_p = torch.as_tensor(log_density(grid)).double().reshape(n, n)
    return _to_numpy(torch.softmax(log_p.flatten(), 0).reshape(n, n))


def plot_density_2d(density, extent=(-4.0, 4.0, -4.0, 4.0), ax=None, title: str | None = None,
                    cmap: str = "viridis", log_scale: bool = False):
    """Show a 2-D density (H, W), rows along z₂ from extent's y0 upwards; returns the Axes.

    ``log_scale=True`` shows the log-density over the 6 nats below its maximum (shows tails)."""
    density = _to_numpy(density)
    if density.ndim != 2:
        raise ValueError(f"density must be a 2-D array, got shape {density.shape}")
    if log_scale:
        with np.errstate(divide="ignore"):
            density = np.log(density)
        density = np.maximum(density, density.max() - 6.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.imshow(density, extent=extent, origin="lower", cmap=cmap, aspect="equal",
              interpolation="nearest")
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    if title:
        ax.set_title(title)
    return ax


def plot_samples_2d(samples, extent=(-4.0, 4.0, -4.0, 4.0), bins: int = 100, ax=None,
                    title: str | None = None, cmap: str = "viridis"):
    """A 2-D histogram of samples (N, 2), drawn like ``plot_density_2d``; returns the Axes."""
    samples = _to_numpy(samples)
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {samples.shape}")
    x0, x1, y0, y1 = extent
    counts, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=bins,
                                  range=[[y0, y1], [x0, x1]])
    return plot_density_2d(counts / max(len(samples), 1), extent, ax=ax, title=title, cmap=cmap)


def plot_traversal(images, image_shape: tuple[int, int], values, row_labels=None, ax=None,
                   title: str | None = None):
    """Latent traversals as a grid: images (R, V, D), one row per latent dimension; returns Axes.

    Column j shows the code with that row's dimension set to ``values[j]``; ``row_labels``
    (R strings, e.g. "z3 · KL 2.1") name the rows.
    """
    images = _to_numpy(images)
    values = _to_numpy(values).reshape(-1)
    if images.ndim != 3 or images.shape[1] != len(values):
        raise ValueError(f"images must have shape (rows, {len(values)}, D), got {images.shape}")
    rows, cols = images.shape[:2]
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"row_labels must have {rows} entries, got {len(row_labels)}")
    grid = image_grid(images.reshape(rows * cols, -1), image_shape, nrow=cols, pad=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * cols + 1.2, 0.55 * rows + 0.6))
    cm = plt.get_cmap("gray_r").with_extremes(bad="0.75")  # grey lines frame each image
    ax.imshow(grid, cmap=cm, vmin=0.0, vmax=1.0, interpolation="nearest")
    h, w = image_shape
    ticks = np.unique(np.linspace(0, cols - 1, min(cols, 5)).round().astype(int))
    ax.set_xticks(ticks * (w + 1) + (w - 1) / 2, [f"{values[i]:.1f}" for i in ticks])
    ax.set_yticks(np.arange(rows) * (h + 1) + (h - 1) / 2,
                  row_labels if row_labels is not None else [f"z{i + 1}" for i in range(rows)])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("value of the traversed latent dimension")
    ax.set_title(title or "latent traversals: one dimension changes per row")
    return ax


def plot_image_table(images, image_shape: tuple[int, int], row_labels=None, col_labels=None,
                     ax=None, title: str | None = None, xlabel: str | None = None,
                     ylabel: str | None = None):
    """Images (R, C, D) as a table with labelled rows and columns (e.g. one row per class)."""
    images = _to_numpy(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (rows, columns, D), got {images.shape}")
    rows, cols = images.shape[:2]
    for labels, n, what in ((row_labels, rows, "row_labels"), (col_labels, cols, "col_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{what} must have {n} entries, got {len(labels)}")
    grid = image_grid(images.reshape(rows * cols, -1), image_shape, nrow=cols, pad=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * cols + 1.2, 0.5 * rows + 0.7))
    cm = plt.get_cmap("gray_r").with_extremes(bad="white")
    ax.imshow(grid, cmap=cm, vmin=0.0, vmax=1.0, interpolation="nearest")
    h, w = image_shape
    ax.set_xticks(np.arange(cols) * (w + 1) + (w - 1) / 2,
                  [] if col_labels is None else [str(c) for c in col_labels])
    ax.set_yticks(np.arange(rows) * (h + 1) + (h - 1) / 2,
                  [] if row_labels is None else [str(r) for r in row_labels])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set(xlabel=xlabel or "", ylabel=ylabel or "", title=title or "")
    return ax


# --------------------------------------------------------------------------- Gaussian mixtures


def mixture_colors(labels=None, resp=None, n: int | None = None) -> np.ndarray:
    """RGB colours (N, 3): one per label (N,), or responsibilities (N, K) mixing K colours."""
    palette = np.array(plt.get_cmap("tab10").colors)
    if resp is not None:
        resp = _to_numpy(resp).astype(float)
        if resp.ndim != 2 or resp.shape[1] > len(palette):
            raise ValueError(f"resp must have shape (N, K) with K <= 10, got {resp.shape}")
        return np.clip(resp @ palette[: resp.shape[1]], 0.0, 1.0)
    if labels is not None:
        return palette[_to_numpy(labels).astype(int) % len(palette)]
    return np.full((n or 0, 3), 0.45)


def plot_mixture_2d(x, means, covs, labels=None, resp=None, weights=None, ax=None,
                    title: str | None = None, s: float = 8.0):
    """Points x (N, 2) coloured by labels or responsibilities, and each component's mean and
    1- and 2-standard-deviation ellipses (means (K, 2), covs (K, 2, 2)); returns the Axes."""
    x, means, covs = _to_numpy(x), _to_numpy(means), _to_numpy(covs)
    if x.ndim != 2 or x.shape[1] != 2 or means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"x and means must have shape (N, 2) and (K, 2), got {x.shape} and "
                         f"{means.shape}")
    if covs.shape != (len(means), 2, 2):
        raise ValueError(f"covs must have shape ({len(means)}, 2, 2), got {covs.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.scatter(x[:, 0], x[:, 1], s=s, c=mixture_colors(labels, resp, len(x)), alpha=0.7,
               linewidths=0)
    palette = plt.get_cmap("tab10").colors
    widths = np.ones(len(means)) if weights is None else 0.8 + 6 * _to_numpy(weights)
    for k in range(len(means)):
        for n_std, style in ((1.0, "-"), (2.0, "--")):
            covariance_ellipse(means[k], covs[k], ax=ax, n_std=n_std, color=palette[k % 10],
                               lw=widths[k] if n_std == 1.0 else 1.0, ls=style)
        ax.plot(*means[k], "x", color="k", ms=7, mew=2)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title or "")
    ax.set_aspect("equal", adjustable="datalim")
    return ax


# --------------------------------------------------------------------------- bounds (notebook 05)


def plot_bounds_vs_k(ks, bounds, stderr=None, log_px=None, ax=None, label: str | None = None,
                     title: str | None = None, **kwargs):
    """Mean bound L_k against k (log axis), with error bars and an optional log p(x) line."""
    ks, bounds = _to_numpy(ks).astype(float), _to_numpy(bounds).astype(float)
    if ks.ndim != 1 or ks.shape != bounds.shape or (ks <= 0).any():
        raise ValueError(f"ks and bounds must be 1-D of the same length with ks > 0, got "
                         f"{ks.shape} and {bounds.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    yerr = None if stderr is None else _to_numpy(stderr).astype(float)
    line = ax.errorbar(ks, bounds, yerr=yerr, fmt="o-", capsize=3, label=label, **kwargs)
    if log_px is not None:
        ax.axhline(float(log_px), ls="--", color=line[0].get_color(), lw=1,
                   label=None if label is None else f"log p(x) ({label})")
    ax.set_xscale("log")
    ax.set(xlabel="k (importance samples)", ylabel="bound $\\mathcal{L}_k$ (nats per image)",
           title=title or "")
    if label is not None:
        ax.legend()
    return ax


def plot_kl_per_dimension(kls: dict, threshold: float | None = None, ax=None,
                          title: str | None = None):
    """Sorted bars of KL(q(z_j|x) || p(z_j)) per latent unit; kls maps model name -> (Z,)."""
    if not kls:
        raise ValueError("kls must map at least one model name to its per-dimension KL (Z,)")
    values = {name: np.sort(_to_numpy(v).astype(float))[::-1] for name, v in kls.items()}
    z_dim = max(len(v) for v in values.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 2 + 0.45 * z_dim), 3.4))
    width = 0.8 / len(values)
    for i, (name, v) in enumerate(values.items()):
        ax.bar(np.arange(len(v)) + (i - (len(values) - 1) / 2) * width, v, width, label=name)
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="k", lw=1, label=f"{threshold:g} nats")
    ax.set(xlabel="latent units, sorted by KL", ylabel="KL per unit (nats)", title=title or "",
           xticks=np.arange(z_dim))
    ax.set_xticklabels([str(j + 1) for j in range(z_dim)], fontsize=7)
    ax.legend()
    return ax
