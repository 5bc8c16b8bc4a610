"""Fixtures shared by the test modules."""

import gzip
import importlib.util

import numpy as np
import pytest
import torch

from course_utils.authoring import ROOT


@pytest.fixture
def one_thread():
    """Training tests run on one thread: faster on a busy machine, and the same everywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """write(n) puts an n-image MNIST training file pair (random pixels and labels, seed 0) in
    tmp_path and points DATA_DIR at it; returns the folder."""

    def write(n: int = 60):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for name, array, code in (("train-images-idx3-ubyte.gz", images, 3),
                                  ("train-labels-idx1-ubyte.gz", labels, 1)):
            header = bytes([0, 0, 8, code]) + b"".join(
                int(s).to_bytes(4, "big") for s in array.shape)
            with gzip.open(tmp_path / name, "wb") as f:
                f.write(header + array.tobytes())
        monkeypatch.setenv("DATA_DIR", str(tmp_path))
        return tmp_path

    return write


@pytest.fixture
def load_benchmark():
    """load(name) imports benchmarks/<name>.py as a module (the folder is not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
