"""Every data set of the course, loaded offline by default.

- ``load_images``: one loader for every image set (``IMAGE_DATASETS``), chosen by name or by
  $DATASET; it returns an ``ImageData`` with train and test splits and the image shape.
- ``load_digits``: scikit-learn's bundled 8x8 digits.
- ``load_mnist_subset``: a class-balanced 28x28 MNIST subset stored inside the package
  (10,000 train and 2,000 test images, SHA-256 checked): MNIST without a download.
- ``load_mnist``: MNIST from the standard IDX files under $DATA_DIR (optional download, with
  a SHA-256 check); ``read_idx`` reads any IDX file, ``dynamic_binarize`` samples binary pixels.
- toy sets for the mixture and variational-inference pictures: ``gaussian_blobs``,
  ``two_moons``, ``bimodal_1d`` (with its exact ``bimodal_1d_log_prob``).

Download the MNIST files once with ``python -m course_utils.data download`` (or
``load_mnist(download=True)``); rebuild the bundled subset from them with
``python -m course_utils.data subset --from DIR``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import math
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .sprites import make_sprites  # noqa: F401  (procedural dSprites-like images, Part IV)

DIGITS_SHAPE = (8, 8)
_DIGITS_TEST_FRACTION = 0.2
MNIST_SPLITS = ("train", "valid", "train_all", "test")
_SPLIT_SEED = 1234  # fixed: the train/test split never changes between runs or machines


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


def load_digits(
    split: str = "train", device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits: x (N, 64) float32 in [0, 1], y (N,) int64; fixed 80/20 split."""
    _check_split(split, ("train", "test", "all"))
    data, target = _digits_arrays()
    x = torch.tensor(data / 16.0, dtype=torch.float32)
    y = torch.tensor(target, dtype=torch.int64)
    if split != "all":
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(y))
        n_test = int(round(_DIGITS_TEST_FRACTION * len(y)))
        index = order[n_test:] if split == "train" else order[:n_test]
        x, y = x[index], y[index]
    return x.to(device or "cpu"), y.to(device or "cpu")


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as (1797, 64) pixel counts 0..16 and (1797,) labels, read once."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.data, bunch.target


def gaussian_blobs(
    n: int = 600, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Three anisotropic 2-D Gaussian clusters: x (n, 2), true component labels z (n,)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 3:
        raise ValueError(f"n must be an int >= 3, got {n!r}")
    g = torch.Generator().manual_seed(_check_seed(seed))
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


def two_moons(
    n: int = 500, noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles (as sklearn's make_moons), shuffled: x (n, 2), y (n,) int64."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    g = torch.Generator().manual_seed(_check_seed(seed))
    n_outer = n // 2
    t_outer = torch.linspace(0, math.pi, n_outer, dtype=dtype)
    t_inner = torch.linspace(0, math.pi, n - n_outer, dtype=dtype)
    outer = torch.stack([t_outer.cos(), t_outer.sin()], dim=1)
    inner = torch.stack([1 - t_inner.cos(), 0.5 - t_inner.sin()], dim=1)
    x = torch.cat([outer, inner]) + noise * torch.randn(n, 2, generator=g, dtype=dtype)
    y = (torch.arange(n) >= n_outer).long()  # 0 for the outer moon, 1 for the inner one
    order = torch.randperm(n, generator=g)
    return x[order], y[order]


# A 1-D two-component mixture 0.3 N(-2, 0.6²) + 0.7 N(2, 0.6²): the bimodal target of the
# forward-vs-reverse KL picture (the unequal weights make "which mode?" visible).
BIMODAL_WEIGHTS = (0.3, 0.7)
BIMODAL_MEANS = (-2.0, 2.0)
BIMODAL_STD = 0.6


def bimodal_1d(
    n: int = 1000, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of the bimodal 1-D mixture (see BIMODAL_*): x (n,), component labels z (n,)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    g = torch.Generator().manual_seed(_check_seed(seed))
    z = torch.multinomial(torch.tensor(BIMODAL_WEIGHTS), n, replacement=True, generator=g)
    means = torch.tensor(BIMODAL_MEANS, dtype=dtype)
    return means[z] + BIMODAL_STD * torch.randn(n, generator=g, dtype=dtype), z


def bimodal_1d_log_prob(x: torch.Tensor) -> torch.Tensor:
    """Exact log density of the bimodal 1-D mixture: x (...) -> (...)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    means = torch.tensor(BIMODAL_MEANS, dtype=x.dtype, device=x.device)
    log_w = torch.tensor(BIMODAL_WEIGHTS, dtype=x.dtype, device=x.device).log()
    log_normal = torch.distributions.Normal(means, BIMODAL_STD).log_prob(x.unsqueeze(-1))
    return torch.logsumexp(log_w + log_normal, dim=-1)


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


# --------------------------------------------------------------------------- MNIST

MNIST_SHAPE = (28, 28)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# SHA-256 of the *uncompressed* IDX payloads: any correct gzip of the standard files passes.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_DEFAULT_MNIST_DIR = "~/.cache/course_data/mnist"
_DOWNLOAD_COMMAND = "python -m course_utils.data download"
_BINARIZE_SEEDS = {"train": 101, "valid": 102, "test": 103, "train_all": 104}  # fixed per split
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class _ShortError:
    """Mixin: Jupyter shows only the message, no traceback (IPython honours this hook)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {line}" if i == 0 else f"  {line}"
                for i, line in enumerate(str(self).splitlines())]


class DataNotFoundError(_ShortError, FileNotFoundError):
    """A data file is not where the course looks for it; the message says how to get it."""


class DataFileError(_ShortError, ValueError):
    """A data file is there but damaged (not gzip, not IDX, truncated, wrong shape)."""


class DownloadError(_ShortError, RuntimeError):
    """A download failed (network, HTTP error, checksum mismatch); nothing was kept."""


def mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The MNIST folder: data_dir if given, else $DATA_DIR, else ~/.cache/course_data/mnist."""
    if data_dir is None:
        data_dir = os.environ.get("DATA_DIR", "").strip() or _DEFAULT_MNIST_DIR
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path (str or Path), got {type(data_dir).__name__}")
    return Path(data_dir).expanduser()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped if it ends in .gz), e.g. images -> (N, 28, 28) uint8, read-only."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"IDX file not found: {path}")
    stat = path.stat()  # the cache key includes size and mtime, so a replaced file is reread
    return _read_idx_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    array = _decode_idx(_read_payload(Path(path)), path)
    array.flags.writeable = False  # shared by every caller: copy it before changing it
    return array


def _read_payload(path: Path) -> bytes:
    """The uncompressed bytes of a file, gunzipped if its name ends in .gz."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataFileError(f"{path} is not a valid gzip file ({err}).") from None


def _decode_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse IDX bytes: magic 00 00 <type> <ndim>, ndim big-endian uint32 sizes, then the data."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataFileError(
            f"{name} is not an IDX file: its magic number is {raw[:4].hex(' ') or 'missing'}, "
            "expected 00 00, a type code (08 for uint8) and the number of dimensions."
        )
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise DataFileError(f"{name} is truncated: it ends inside its header.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected, found = math.prod(shape) * dtype.itemsize, len(raw) - start
    if found != expected:
        problem = "is truncated" if found < expected else "has extra bytes"
        raise DataFileError(
            f"{name} {problem}: its header says shape {shape} ({expected:,} bytes of data) "
            f"but {found:,} bytes follow."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=start).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    binarize: bool = False,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST: x (N, 784) float32 in [0, 1], y (N,) int64 for a split of ``MNIST_SPLITS``.

    "train" is the first 5/6 of the training file and "valid" the last 1/6 (50,000 and
    10,000 images for the standard 60,000; a smaller file keeps the same ratio); "train_all"
    is all of it. "test" needs the t10k files. binarize=True samples fixed (seeded) binary
    pixels.
    """
    _check_split(split, MNIST_SPLITS)
    for flag, value in (("download", download), ("binarize", binarize)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    images, labels = _mnist_arrays(mnist_dir(data_dir), "test" if split == "test" else "train",
                                   download)
    rows = _split_rows(len(labels), split)
    x = torch.from_numpy(images[rows].reshape(-1, math.prod(MNIST_SHAPE)).astype(np.float32))
    x = x.div_(255.0)
    if binarize:
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(_BINARIZE_SEEDS[split]))
    y = torch.from_numpy(labels[rows].astype(np.int64))
    return x.to(device or "cpu"), y.to(device or "cpu")


@dataclass(frozen=True)
class MnistProtocol:
    """Which MNIST splits a benchmark trains and reports on, and a sentence that says so."""

    train_split: str
    eval_split: str
    description: str


def mnist_protocol(data_dir: str | os.PathLike | None = None) -> MnistProtocol:
    """The paper protocol when the t10k files are in the MNIST folder, else a validation split.

    With them: train on all 60,000 training images, report on the official 10,000 test images.
    Without: train on the first 50,000, report on the last 10,000 training images.
    """
    folder = mnist_dir(data_dir)
    if all(_find_file(folder, name) is not None for name in _MNIST_FILES["test"]):
        return MnistProtocol("train_all", "test", "official split: trained on all 60,000 "
                             "training images, reported on the 10,000 test images (t10k)")
    return MnistProtocol("train", "valid", "validation split (no t10k files in "
                         f"{folder}): trained on the first 50,000 training images, reported "
                         "on the last 10,000")


def _mnist_arrays(folder: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of the "train" or "test" files."""
    names = _MNIST_FILES[part]
    missing = [name for name in names if _find_file(folder, name) is None]
    if missing and download:
        download_mnist(folder, files={name: MNIST_SHA256[name] for name in missing})
    elif missing:
        raise DataNotFoundError(_missing_message(folder, missing, part))
    try:
        images, labels = (read_idx(_find_file(folder, name)) for name in names)
    except DataFileError as err:
        raise DataFileError(
            f"{err}\nDelete it and download it again: load_mnist(download=True) or "
            f"`{_DOWNLOAD_COMMAND}`."
        ) from None
    _check_mnist(images, labels, folder, names)
    return images, labels


def _find_file(folder: Path, name: str) -> Path | None:
    """folder/name, or its gunzipped version (name without .gz), or None."""
    for path in (folder / name, folder / name.removesuffix(".gz")):
        if path.is_file():
            return path
    return None


def _missing_message(folder: Path, missing: list[str], part: str) -> str:
    if part == "test":
        what, size, call = "The MNIST test split needs the t10k files", 2, 'split="test", '
    else:
        what, size, call = "MNIST is missing", 10, ""
    return (
        f"{what}: {', '.join(missing)} not found in {folder}.\n"
        f"Download them (~{size} MB, checked by SHA-256) with load_mnist({call}download=True) "
        f"or `{_DOWNLOAD_COMMAND}`,\nor copy the IDX .gz files there by hand "
        "(or set DATA_DIR to the folder that holds them)."
    )


def _check_mnist(images: np.ndarray, labels: np.ndarray, folder: Path, names) -> None:
    """Shapes and values of an MNIST image/label pair, with a message naming the file."""
    if images.ndim != 3 or images.shape[1:] != MNIST_SHAPE or images.dtype != np.uint8:
        raise DataFileError(
            f"{folder / names[0]} holds {images.dtype} images of shape {images.shape}; "
            f"MNIST images are uint8 of shape (N, {MNIST_SHAPE[0]}, {MNIST_SHAPE[1]})."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8 or (labels.size and labels.max() > 9):
        raise DataFileError(f"{folder / names[1]} does not hold uint8 labels 0..9 of shape (N,).")
    if len(images) != len(labels):
        raise DataFileError(
            f"{names[0]} has {len(images)} images but {names[1]} has {len(labels)} labels "
            f"(in {folder}); they must come from the same MNIST release."
        )


def _split_rows(n: int, split: str) -> slice:
    """Rows of split: test and train_all all n; train the first n - n // 6, valid the last."""
    if split in ("test", "train_all"):
        return slice(0, n)
    n_valid = n // 6  # 10,000 of the standard 60,000
    if n_valid == 0:
        raise DataFileError(f"the MNIST training file has {n} images; a valid split needs >= 6.")
    return slice(0, n - n_valid) if split == "train" else slice(n - n_valid, n)


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fresh binary pixels each call, P(x_bin = 1) = x: x (B, D) in [0, 1] -> (B, D) of 0./1."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device} but x is on {x.device}; "
                         "create it with torch.Generator(device=x.device)")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold probabilities in [0, 1] (NaN is not allowed)")
    # u < x with u ~ U[0, 1) is 1 with probability x; three times faster than torch.bernoulli
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (u < x).to(x.dtype)


def random_shift(x: torch.Tensor, image_shape: tuple[int, int], max_shift: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image moved by its own random whole-pixel offset in [-max_shift, max_shift] along
    both axes, uncovered pixels 0: x (B, H·W) -> (B, H·W)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a (B, H*W) tensor, got {getattr(x, 'shape', type(x))}")
    height, width = image_shape
    if height * width != x.shape[1]:
        raise ValueError(f"image_shape {tuple(image_shape)} has {height * width} pixels but x "
                         f"has {x.shape[1]} per image")
    whole = isinstance(max_shift, int) and not isinstance(max_shift, bool)
    if not whole or not 0 <= max_shift < min(height, width):
        raise ValueError(f"max_shift must be a whole number of pixels in [0, "
                         f"{min(height, width)}), got {max_shift!r}")
    if max_shift == 0:
        return x
    s, b, device = max_shift, len(x), x.device
    padded = torch.nn.functional.pad(x.view(b, height, width), (s, s, s, s))
    offset = torch.randint(0, 2 * s + 1, (2, b), generator=generator, device=device)
    rows = offset[0, :, None] + torch.arange(height, device=device)  # (B, H) rows of padded
    cols = offset[1, :, None] + torch.arange(width, device=device)  # (B, W)
    batch = torch.arange(b, device=device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].reshape(b, -1)


def download_mnist(
    data_dir: str | os.PathLike | None = None,
    base_url: str | Sequence[str] | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Download MNIST files into data_dir, checking the SHA-256 of each uncompressed payload.

    base_url: one mirror or a list tried in order (default MNIST_MIRRORS); files: file name ->
    SHA-256 of its uncompressed content (default MNIST_SHA256, all four files). Files already
    there with the right content are kept. Returns the folder.
    """
    folder = mnist_dir(data_dir)
    urls = _check_urls(MNIST_MIRRORS if base_url is None else base_url)
    files = _check_checksums(MNIST_SHA256 if files is None else files)
    folder.mkdir(parents=True, exist_ok=True)
    for name, sha256 in files.items():
        target = folder / name
        _remove_stale_parts(target)
        if target.is_file() and _payload_sha256_or_none(target, name.endswith(".gz")) == sha256:
            continue
        _download_verified(name, sha256, urls, folder)
    return folder


def _check_urls(base_url: str | Sequence[str]) -> tuple[str, ...]:
    urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
    if not urls or not all(isinstance(u, str) and "://" in u for u in urls):
        raise ValueError(f"base_url must be a URL or a list of URLs, got {base_url!r}")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def _check_checksums(files: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(files, Mapping) or not files:
        raise ValueError("files must be a non-empty dict: file name -> SHA-256 (64 hex digits)")
    for name, sha256 in files.items():
        if not isinstance(name, str) or "/" in name or not name:
            raise ValueError(f"files: {name!r} is not a plain file name")
        if not isinstance(sha256, str) or len(sha256) != 64 or not _is_hex(sha256):
            raise ValueError(f"files[{name!r}] must be a SHA-256 of 64 hex digits, got {sha256!r}")
    return {name: sha256.lower() for name, sha256 in files.items()}


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _download_verified(name: str, sha256: str, urls: tuple[str, ...], folder: Path) -> None:
    """Try each mirror until one gives the right content; raise DownloadError if none does."""
    failures = []
    for base in urls:
        try:
            _fetch(base + name, folder / name, sha256)
            return
        except DownloadError as err:
            print(f"  failed: {err}", flush=True)
            failures.append(str(err))
    raise DownloadError(
        f"could not download {name}:\n" + "\n".join(f"- {f}" for f in failures) + "\n"
        f"Download it with a browser from one of these URLs and put it in {folder} "
        "(or set DATA_DIR to a folder that has it)."
    )


# MNIST's largest file is 9.9 MB; a mirror sending far more is not sending MNIST.
MAX_DOWNLOAD_BYTES = 64 << 20


def _remove_stale_parts(target: Path) -> None:
    """Delete what a killed earlier download of target left behind (.NAME.*.part)."""
    for part in target.parent.glob(f".{target.name}.*.part"):
        part.unlink(missing_ok=True)


def _fetch(url: str, target: Path, sha256: str) -> None:
    """Download url into a temporary file, verify it, then move it to target."""
    print(f"downloading {url}", flush=True)
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_url(url, out)
        got = _payload_sha256_or_none(Path(part), gzipped=target.suffix == ".gz")
        if got is None:
            raise DownloadError(f"{url}: the file is not valid gzip data (corrupt download?)")
        if got != sha256:
            raise DownloadError(
                f"{url}: checksum mismatch, the file is corrupt or not the expected data "
                f"(SHA-256 of the uncompressed data: expected {sha256}, got {got})"
            )
        os.chmod(part, 0o644)  # mkstemp makes it private; a data file is not
        os.replace(part, target)
    finally:
        if os.path.exists(part):
            os.remove(part)


def _copy_url(url: str, out) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "course_utils"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            received = 0
            while chunk := response.read(1 << 20):
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(f"{url}: more than {MAX_DOWNLOAD_BYTES >> 20} MB, far "
                                        f"larger than any MNIST file; not the expected data")
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"{url}: network error ({reason}); are you online?") from None


def _payload_sha256_or_none(path: Path, gzipped: bool) -> str | None:
    """SHA-256 hex digest of the (gunzipped) content of path, or None if the gzip is broken."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return None
    return digest.hexdigest()


# --------------------------------------------------------------------------- bundled subset

# course_utils/bundled/mnist_subset.npz, written by `python -m course_utils.data subset`:
# 1000 train images per digit from MNIST's "train" rows, 200 test images per digit from its
# "valid" rows (so the subset's test images are never in the full MNIST's training split).
MNIST_SUBSET_SHA256 = "7396bb5031bf86a94878e5ac07803ddc2a968af0677dabd947f7ba207a3a965e"
MNIST_SUBSET_PER_CLASS = {"train": 1000, "test": 200}
_SUBSET_SEED = 2026
_SUBSET_COMMAND = "python -m course_utils.data subset --from DIR"
_SUBSET_FILE = Path(__file__).resolve().parent / "bundled" / "mnist_subset.npz"  # to write
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same bytes on every run


def _subset_path():
    """The bundled subset file, as an importlib.resources Traversable (tests replace this)."""
    return resources.files("course_utils") / "bundled" / "mnist_subset.npz"


def load_mnist_subset(
    split: str = "train", device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bundled balanced MNIST subset: x (N, 784) float32 in [0, 1], y (N,) int64; N 10000 or 2000.

    split "train" (1000 images per digit) or "test" (200 per digit, from MNIST's "valid" rows).
    """
    _check_split(split, ("train", "test"))
    images, labels = _subset_arrays(_subset_path(), MNIST_SUBSET_SHA256)[split]
    x = torch.from_numpy(images.reshape(-1, math.prod(MNIST_SHAPE)).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    return x.div_(255.0).to(device or "cpu"), y.to(device or "cpu")


@lru_cache(maxsize=2)
def _subset_arrays(path, sha256: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split -> (images (N, 28, 28) uint8, labels (N,) uint8) of the subset file, read once."""
    if not path.is_file():
        raise DataNotFoundError(
            f"The bundled MNIST subset is missing: {path} not found.\n"
            "Reinstall the package (pip install -e .), or rebuild the file from the MNIST "
            f"training files with `{_SUBSET_COMMAND}`."
        )
    raw = path.read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    if got != sha256:
        raise DataFileError(
            f"The bundled MNIST subset {path} is damaged: its SHA-256 is {got}, expected "
            f"{sha256}.\nReinstall the package (pip install -e .), or rebuild the file from "
            f"the MNIST training files with `{_SUBSET_COMMAND}`."
        )
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        arrays = {split: (npz[f"{split}_images"], npz[f"{split}_labels"])
                  for split in ("train", "test")}
    for pair in arrays.values():
        for array in pair:
            array.flags.writeable = False  # shared by every caller: copy it before changing it
    return arrays


def make_mnist_subset(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    train_per_class: int = MNIST_SUBSET_PER_CLASS["train"],
    test_per_class: int = MNIST_SUBSET_PER_CLASS["test"],
) -> str:
    """Write the balanced subset of the MNIST training files in source to out; return its SHA-256.

    out defaults to the package's bundled file. Train images come from MNIST's "train" rows,
    test images from its "valid" rows; seeded (numpy default_rng(2026)) and shuffled.
    """
    for flag, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{flag} must be an int >= 1, got {value!r}")
    images, labels = _mnist_arrays(mnist_dir(source), "train", download=False)
    rng = np.random.default_rng(_SUBSET_SEED)
    arrays = {}
    for split, part, per_class in (("train", "train", train_per_class),
                                   ("test", "valid", test_per_class)):
        rows = _balanced_rows(labels, _split_rows(len(labels), part), per_class, rng, part)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[rows], labels[rows]
    out = _SUBSET_FILE if out is None else Path(out).expanduser()
    _write_npz(out, arrays)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _balanced_rows(labels: np.ndarray, rows: slice, per_class: int, rng, part: str) -> np.ndarray:
    """per_class random row numbers of each digit 0..9 within rows, shuffled: (10 * per_class,)."""
    chosen = []
    for digit in range(10):
        candidates = rows.start + np.flatnonzero(labels[rows] == digit)
        if len(candidates) < per_class:
            raise DataFileError(
                f"MNIST's {part} rows ({rows.start:,} to {rows.stop - 1:,}) hold "
                f"{len(candidates)} images of the digit {digit}, fewer than the {per_class} per "
                "class asked for; ask for fewer or use the full MNIST training files."
            )
        chosen.append(rng.choice(candidates, per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez_compressed, but reproducible byte for byte (fixed zip dates and attributes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w") as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                info.compress_type, info.create_system = zipfile.ZIP_DEFLATED, 3  # 3: Unix
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue(), compresslevel=9)
        os.chmod(part, 0o644)  # mkstemp makes it private; a data file is not
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)


# --------------------------------------------------------------------------- all image sets

IMAGE_DATASETS = ("digits", "mnist_subset", "mnist")


@dataclass(frozen=True, repr=False)
class ImageData:
    """An image data set: x (N, H * W) float32 pixels in [0, 1], y (N,) int64 labels 0..9."""

    name: str
    image_shape: tuple[int, int]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def head(self, n_train: int, n_test: int) -> ImageData:
        """The first n_train training and n_test test rows (fast mode); the same data set."""
        for flag, value in (("n_train", n_train), ("n_test", n_test)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{flag} must be an int >= 0, got {value!r}")
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
                       x_test=self.x_test[:n_test], y_test=self.y_test[:n_test])

    def describe(self) -> str:
        """One line, e.g. "digits: train (1438, 64), test (359, 64), 8×8, pixels in [0, 1]"."""
        height, width = self.image_shape
        return (f"{self.name}: train {tuple(self.x_train.shape)}, test "
                f"{tuple(self.x_test.shape)}, {height}×{width}, pixels in [0, 1]")

    def __repr__(self) -> str:
        return f"ImageData({self.describe()})"


def load_images(
    name: str | None = None,
    default: str = "mnist_subset",
    device: torch.device | str | None = None,
) -> ImageData:
    """The image set name (one of IMAGE_DATASETS), or $DATASET when name is None.

    An empty or unset $DATASET means default. "digits": 8x8, fixed 80/20 split;
    "mnist_subset": the bundled balanced 28x28 subset (10,000 / 2,000); "mnist": full MNIST
    from $DATA_DIR, whose *valid* split (the last 10,000 training images) is the test split.
    """
    if name is None:
        name = os.environ.get("DATASET", "").strip().lower()
        source = "the DATASET environment variable" if name else "the default argument"
        name = name or default
    else:
        source = "the name argument"
    if name not in IMAGE_DATASETS:
        choices = ", ".join(repr(choice) for choice in IMAGE_DATASETS)
        raise ValueError(f"unknown image data set {name!r} (from {source}); "
                         f"choose one of {choices}")
    if name == "digits":
        train, test, shape = load_digits("train", device), load_digits("test", device), DIGITS_SHAPE
    elif name == "mnist_subset":
        train, test = load_mnist_subset("train", device), load_mnist_subset("test", device)
        shape = MNIST_SHAPE
    else:
        train, test = load_mnist("train", device=device), load_mnist("valid", device=device)
        shape = MNIST_SHAPE
    return ImageData(name, shape, *train, *test)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m course_utils.data download [--data-dir DIR] [--train-only]``
    and ``python -m course_utils.data subset --from DIR [--out PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.data",
                                     description="Download MNIST (checked by SHA-256), or "
                                     "build the bundled balanced MNIST subset from it.")
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="download the MNIST files")
    download.add_argument("--data-dir", help=f"default: $DATA_DIR, else {_DEFAULT_MNIST_DIR}")
    download.add_argument("--train-only", action="store_true", help="skip the t10k test files")
    download.add_argument("--base-url", action="append", help="mirror(s) to use instead of "
                          "the defaults; repeat to give several")
    subset = commands.add_parser("subset", help="write the balanced subset of the MNIST "
                                 "training files (course_utils/bundled/mnist_subset.npz)")
    subset.add_argument("--from", dest="source", required=True, metavar="DIR",
                        help="folder with the MNIST training files (train-*-idx?-ubyte.gz)")
    subset.add_argument("--out", metavar="PATH",
                        help=f"default: the package's file, {_SUBSET_FILE}")
    for split, default in MNIST_SUBSET_PER_CLASS.items():
        subset.add_argument(f"--{split}-per-class", type=int, default=default,
                            help=f"{split} images per digit (default {default})")
    args = parser.parse_args(argv)
    if args.command == "subset":
        _subset_command(args)
        return
    names = _MNIST_FILES["train"] if args.train_only else MNIST_SHA256
    try:
        folder = download_mnist(args.data_dir, args.base_url,
                                {name: MNIST_SHA256[name] for name in names})
    except DownloadError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"MNIST is ready in {folder}")


def _subset_command(args: argparse.Namespace) -> None:
    """Run ``subset``: write the file, print its size and SHA-256."""
    out = _SUBSET_FILE if args.out is None else Path(args.out).expanduser()
    try:
        sha256 = make_mnist_subset(args.source, out, args.train_per_class, args.test_per_class)
    except (DataNotFoundError, ValueError) as err:  # DataFileError is a ValueError
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {out} ({out.stat().st_size:,} bytes)\nSHA-256 {sha256}")
    if out.resolve() == _SUBSET_FILE and sha256 != MNIST_SUBSET_SHA256:
        print("This is not MNIST_SUBSET_SHA256: set it to the SHA-256 above in "
              "course_utils/data.py, or load_mnist_subset will reject the file.")

if __name__ == "__main__":
    main()
