"""Tiny MNIST files in the IDX format, for the tests of the loader and of the benchmarks."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D,
              "float64": 0x0E}


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of array: magic 00 00 <type> <ndim>, big-endian sizes, big-endian data."""
    header = bytes([0, 0, _IDX_CODES[array.dtype.name], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_gz(path: Path, raw: bytes) -> Path:
    path.write_bytes(gzip.compress(raw))
    return path


def random_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random 28x28 uint8 images and labels 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def write_mnist(folder: Path, n: int, names=TRAIN_FILES, seed: int = 0):
    """Write a tiny MNIST-format image/label pair into folder; return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = random_mnist(n, seed)
    write_gz(folder / names[0], idx_bytes(images))
    write_gz(folder / names[1], idx_bytes(labels))
    return images, labels
