"""Where tensors live, how runs are seeded, and whether we are in fast mode."""

import os
import random

import numpy as np
import torch

_DEVICE_NAMES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device() -> torch.device:
    """The device to train on: $COURSE_DEVICE if set, else CUDA, else Apple MPS, else CPU."""
    requested = os.environ.get("COURSE_DEVICE", "").strip()
    if requested:
        return _requested_device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _requested_device(name: str) -> torch.device:
    """Validate COURSE_DEVICE (e.g. 'cpu', 'cuda', 'cuda:1', 'mps') against this machine."""
    kind = name.split(":")[0]
    if kind not in _DEVICE_NAMES:
        raise ValueError(
            f"COURSE_DEVICE={name!r} is not a device this course knows; use one of "
            f"{', '.join(_DEVICE_NAMES)} (or unset it to choose automatically)."
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"COURSE_DEVICE={name!r} but PyTorch sees no CUDA GPU here; unset it.")
    if kind == "mps" and not _mps_available():
        raise RuntimeError(f"COURSE_DEVICE={name!r} but Apple MPS is not available here; unset it.")
    return torch.device(name)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a notebook reruns identically."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)  # NumPy integers too
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def fast_mode() -> bool:
    """True when $COURSE_FAST is set to 1/true/yes: small data and few epochs (tests, CI)."""
    value = os.environ.get("COURSE_FAST", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"COURSE_FAST={value!r} is not understood; use 1 (fast) or 0 (default).")
