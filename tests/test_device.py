"""Tests of course_utils.device: get_device, seed_everything, fast_mode."""

import random

import numpy as np
import pytest
import torch

from course_utils import device as device_module
from course_utils import fast_mode, get_device, seed_everything


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


# --------------------------------------------------------------------------- get_device


def test_get_device_falls_back_to_cpu(no_accelerator):
    assert get_device() == torch.device("cpu")


def test_get_device_prefers_cuda_then_mps(no_accelerator, monkeypatch):
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")


@pytest.mark.parametrize("value, expected", [("cpu", "cpu"), ("  cpu ", "cpu"), ("", "cpu")])
def test_get_device_honours_course_device(no_accelerator, monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_DEVICE", value)  # empty or blank means "choose automatically"
    assert get_device() == torch.device(expected)


def test_course_device_cpu_wins_over_an_available_gpu(no_accelerator, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cuda:1")
    assert get_device() == torch.device("cuda", 1)


@pytest.mark.parametrize("value", ["tpu", "gpu", "CUDA", "xla:0"])
def test_course_device_rejects_unknown_names(no_accelerator, monkeypatch, value):
    monkeypatch.setenv("COURSE_DEVICE", value)
    with pytest.raises(ValueError, match=rf"COURSE_DEVICE='{value}' is not a device this course "
                                         r"knows; use one of cpu, cuda, mps"):
        get_device()


def test_course_device_rejects_a_malformed_index(no_accelerator, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSE_DEVICE", "cuda:x")
    with pytest.raises(RuntimeError):  # torch's own message: "Invalid device string"
        get_device()


@pytest.mark.parametrize("value, message", [
    ("cuda", "but PyTorch sees no CUDA GPU here; unset it"),
    ("cuda:0", "but PyTorch sees no CUDA GPU here; unset it"),
    ("mps", "but Apple MPS is not available here; unset it"),
])
def test_course_device_unavailable_accelerator(no_accelerator, monkeypatch, value, message):
    monkeypatch.setenv("COURSE_DEVICE", value)
    with pytest.raises(RuntimeError, match=rf"COURSE_DEVICE='{value}' {message}"):
        get_device()


def test_get_device_on_this_machine_gives_a_usable_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    device = get_device()
    assert torch.ones(2, device=device).sum().item() == 2.0


# --------------------------------------------------------------------------- seed_everything


def _draws():
    return random.random(), np.random.rand(3).tolist(), torch.randn(3).tolist()


def test_seed_everything_makes_python_numpy_and_torch_repeat():
    seed_everything(7)
    first = _draws()
    seed_everything(7)
    assert _draws() == first
    seed_everything(8)
    second = _draws()
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_seed_everything_default_is_zero():
    seed_everything()
    default = _draws()
    seed_everything(0)
    assert _draws() == default


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None, True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        seed_everything(seed)


# --------------------------------------------------------------------------- fast_mode


@pytest.mark.parametrize("value", ["1", "true", "YES", " on ", "True"])
def test_fast_mode_on(monkeypatch, value):
    monkeypatch.setenv("COURSE_FAST", value)
    assert fast_mode() is True


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off", "  "])
def test_fast_mode_off(monkeypatch, value):
    monkeypatch.setenv("COURSE_FAST", value)
    assert fast_mode() is False


def test_fast_mode_unset_is_off(monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    assert fast_mode() is False


@pytest.mark.parametrize("value", ["2", "fast", "y"])
def test_fast_mode_rejects_unknown_values(monkeypatch, value):
    monkeypatch.setenv("COURSE_FAST", value)
    with pytest.raises(ValueError, match=rf"COURSE_FAST='{value}' is not understood; use 1"):
        fast_mode()
