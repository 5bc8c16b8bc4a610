"""Fixtures shared by the test modules."""

import importlib.util

import pytest
import torch
from mnist_files import write_mnist  # tests/, on sys.path under pytest

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
    """write(n) puts an n-image MNIST training file pair (``mnist_files.write_mnist``) in
    tmp_path and points DATA_DIR at it; returns the folder."""

    def write(n: int = 60):
        write_mnist(tmp_path, n)
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
