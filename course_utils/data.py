"""Every data set of the course, loaded offline by default.

- ``load_digits``: scikit-learn's bundled 8x8 digits (the default image data).
- ``load_mnist``: MNIST from the standard IDX files under $DATA_DIR (optional download).
- toy 2-D sets for the mixture and variational-inference pictures.
"""

from __future__ import annotations

import numpy as np
import torch

DIGITS_SHAPE = (8, 8)
_DIGITS_TEST_FRACTION = 0.2
_SPLIT_SEED = 1234  # fixed: the train/test split never changes between runs or machines


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


def load_digits(
    split: str = "train", device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits: x (N, 64) float32 in [0, 1], y (N,) int64; fixed 80/20 split."""
    from sklearn.datasets import load_digits as sklearn_digits

    _check_split(split, ("train", "test", "all"))
    bunch = sklearn_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    if split != "all":
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(y))
        n_test = int(round(_DIGITS_TEST_FRACTION * len(y)))
        index = order[n_test:] if split == "train" else order[:n_test]
        x, y = x[index], y[index]
    return x.to(device or "cpu"), y.to(device or "cpu")


def gaussian_blobs(
    n: int = 600, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Three anisotropic 2-D Gaussian clusters: x (n, 2), true component labels z (n,)."""
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an int >= 3, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=dtype)
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.5], [1.0, -2.5]], dtype=dtype)
    scales = torch.tensor(
        [[[1.0, 0.0], [0.6, 0.5]], [[0.5, 0.0], [-0.3, 0.8]], [[0.7, 0.0], [0.0, 0.3]]],
        dtype=dtype,
    )  # Cholesky factors of the covariances, (K, 2, 2)
    z = torch.multinomial(weights, n, replacement=True, generator=g)
    eps = torch.randn(n, 2, generator=g, dtype=dtype)
    x = means[z] + (scales[z] @ eps.unsqueeze(-1)).squeeze(-1)
    return x, z
