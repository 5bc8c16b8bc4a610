"""Tests of course_utils.data: digits, toy sets, the IDX reader, load_mnist, the download, the
bundled MNIST subset (and its wheel) and load_images."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import math
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mnist_files import (  # tests/, on sys.path under pytest
    TEST_FILES,
    TRAIN_FILES,
    idx_bytes,
    random_mnist,
    write_gz,
    write_mnist,
)
from scipy import stats
from sklearn.datasets import make_moons

from course_utils import data
from course_utils.authoring import ROOT
from course_utils.data import (
    DataFileError,
    DataNotFoundError,
    DownloadError,
    ImageData,
    download_mnist,
    dynamic_binarize,
    load_images,
    load_mnist,
    load_mnist_subset,
    random_shift,
    read_idx,
)


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- digits


def test_digits_shapes_range_and_split_sizes():
    x, y = data.load_digits("train")
    x_test, y_test = data.load_digits("test")
    x_all, y_all = data.load_digits("all")
    assert x_all.shape == (1797, 64) and y_all.shape == (1797,)
    assert x.shape == (1438, 64) and x_test.shape == (359, 64)  # round(0.2 * 1797) = 359
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x_all.min() == 0.0 and x_all.max() == 1.0
    assert set(y_all.tolist()) == set(range(10))


def test_digits_split_is_fixed_and_disjoint():
    x1, y1 = data.load_digits("train")
    torch.manual_seed(123)  # the split must not depend on the global random state
    np.random.seed(123)
    x2, y2 = data.load_digits("train")
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x_test, _ = data.load_digits("test")
    x_all, _ = data.load_digits("all")
    train_rows = {tuple(r) for r in x1.tolist()}
    test_rows = {tuple(r) for r in x_test.tolist()}
    assert len({tuple(r) for r in x_all.tolist()}) == 1797  # all images distinct, so:
    assert not train_rows & test_rows  # no test image is in the training split
    assert train_rows | test_rows == {tuple(r) for r in x_all.tolist()}  # and none is lost


def test_digits_rejects_bad_split_and_moves_to_device():
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_digits("valid")
    x, y = data.load_digits("test", device="meta")
    assert x.device.type == "meta" and y.device.type == "meta"


# --------------------------------------------------------------------------- toy sets


def test_gaussian_blobs_shapes_reproducible_and_weights():
    x, z = data.gaussian_blobs(3000, seed=1)
    assert x.shape == (3000, 2) and z.shape == (3000,) and x.dtype == torch.float64
    x2, z2 = data.gaussian_blobs(3000, seed=1)
    assert torch.equal(x, x2) and torch.equal(z, z2)
    assert not torch.equal(x, data.gaussian_blobs(3000, seed=2)[0])
    freq = torch.bincount(z, minlength=3).double() / 3000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.03)
    assert torch.allclose(x[z == 0].mean(0), torch.tensor([-2.0, 0.0], dtype=torch.float64),
                          atol=0.1)
    with pytest.raises(ValueError, match="n must be"):
        data.gaussian_blobs(2)


def test_two_moons_matches_sklearn_without_noise():
    x, y = data.two_moons(101, noise=0.0, seed=0)
    x_ref, y_ref = make_moons(101, noise=0.0, shuffle=False)
    assert x.shape == (101, 2) and y.shape == (101,) and y.dtype == torch.int64
    for label in (0, 1):
        ours = np.array(sorted(map(tuple, x[y == label].numpy().round(12))))
        ref = np.array(sorted(map(tuple, x_ref[y_ref == label].round(12))))
        np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert not torch.equal(y, y.sort().values)  # shuffled, so minibatches mix both moons


def test_two_moons_noise_seed_and_validation():
    x1, _ = data.two_moons(400, noise=0.2, seed=3)
    x2, _ = data.two_moons(400, noise=0.2, seed=3)
    clean, _ = data.two_moons(400, noise=0.0, seed=3)
    assert torch.equal(x1, x2)
    assert 0.15 < (x1 - clean).std().item() < 0.25  # same order (same seed), noise std 0.2
    for bad in ({"n": 1}, {"n": 2.5}, {"noise": -0.1}, {"noise": float("nan")}, {"seed": -1}):
        with pytest.raises(ValueError):
            data.two_moons(**{"n": 10, **bad})


def test_bimodal_1d_log_prob_matches_scipy_and_samples_match_moments():
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    ref = np.log(0.3 * stats.norm.pdf(x.numpy(), -2, 0.6) + 0.7 * stats.norm.pdf(x.numpy(), 2, 0.6))
    np.testing.assert_allclose(data.bimodal_1d_log_prob(x).numpy(), ref, rtol=1e-10)
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    assert math.isclose(torch.trapezoid(data.bimodal_1d_log_prob(grid).exp(), grid).item(), 1.0,
                        rel_tol=1e-6)
    samples, z = data.bimodal_1d(20000, seed=0)
    assert samples.shape == (20000,) and z.shape == (20000,)
    mean = 0.3 * -2 + 0.7 * 2
    var = 0.6**2 + 0.3 * (-2 - mean) ** 2 + 0.7 * (2 - mean) ** 2
    assert abs(samples.mean().item() - mean) < 0.05 and abs(samples.var().item() - var) < 0.1
    with pytest.raises(TypeError):
        data.bimodal_1d_log_prob(torch.arange(3))
    with pytest.raises(ValueError):
        data.bimodal_1d(0)


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_read_idx_round_trips_every_type(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    read = read_idx(write_gz(tmp_path / "a-idx3.gz", idx_bytes(array)))
    assert read.shape == (2, 3, 4) and read.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(read, array)
    assert read.dtype.isnative and not read.flags.writeable


def test_read_idx_reads_uncompressed_files_and_caches(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_bytes(labels))
    first = read_idx(path)
    np.testing.assert_array_equal(first, labels)
    assert read_idx(str(path)) is first  # decoded once, then served from memory
    path.write_bytes(idx_bytes(np.array([9, 9, 9], dtype=np.uint8)))  # replaced: read again
    np.testing.assert_array_equal(read_idx(path), [9, 9, 9])


def test_read_idx_bad_magic(tmp_path):
    raw = bytearray(idx_bytes(np.zeros((2, 2), dtype=np.uint8)))
    raw[2] = 0x07  # unknown type code
    with pytest.raises(DataFileError, match="not an IDX file: its magic number is 00 00 07 02"):
        read_idx(write_gz(tmp_path / "bad.gz", bytes(raw)))
    with pytest.raises(DataFileError, match="not an IDX file"):
        read_idx(write_gz(tmp_path / "text.gz", b"hello world"))
    with pytest.raises(DataFileError, match="magic number is missing"):
        read_idx(write_gz(tmp_path / "empty.gz", b""))


def test_read_idx_truncated_payload_and_header(tmp_path):
    raw = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    short = tmp_path / "short-idx3.gz"
    with pytest.raises(DataFileError, match=r"short-idx3.gz is truncated: its header says shape "
                                            r"\(10, 28, 28\) \(7,840 bytes of data\) but 7,000"):
        read_idx(write_gz(short, raw[: 16 + 7000]))
    with pytest.raises(DataFileError, match="truncated: it ends inside its header"):
        read_idx(write_gz(tmp_path / "header.gz", raw[:9]))
    with pytest.raises(DataFileError, match="has extra bytes"):
        read_idx(write_gz(tmp_path / "long.gz", raw + b"\0"))


def test_read_idx_not_gzip_and_corrupt_gzip(tmp_path):
    raw = idx_bytes(np.zeros((3, 4), dtype=np.uint8))
    plain = tmp_path / "plain.gz"
    plain.write_bytes(raw)  # named .gz but not compressed
    with pytest.raises(DataFileError, match=r"plain.gz is not a valid gzip file"):
        read_idx(plain)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(raw)[:-10])  # download stopped early
    with pytest.raises(DataFileError, match=r"cut.gz is not a valid gzip file"):
        read_idx(cut)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found: .*nothing.gz"):
        read_idx(tmp_path / "nothing.gz")


# --------------------------------------------------------------------------- load_mnist


def test_load_mnist_splits_a_small_training_file_five_to_one(tmp_path):
    images, labels = write_mnist(tmp_path, 60)
    x, y = load_mnist("train", data_dir=tmp_path)
    x_valid, y_valid = load_mnist("valid", data_dir=tmp_path)
    assert x.shape == (50, 784) and y.shape == (50,) and x_valid.shape == (10, 784)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(x.numpy(), images[:50].reshape(50, 784) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x_valid.numpy(), images[50:].reshape(10, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels[:50])
    np.testing.assert_array_equal(y_valid.numpy(), labels[50:])
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_load_mnist_split_rule_for_sizes_not_divisible_by_six():
    # the standard file: exactly 50,000 / 10,000
    assert data._split_rows(60000, "train") == slice(0, 50000)
    assert data._split_rows(60000, "valid") == slice(50000, 60000)
    assert data._split_rows(13, "valid") == slice(11, 13)  # 13 // 6 = 2 validation images
    with pytest.raises(DataFileError, match="has 5 images"):
        data._split_rows(5, "train")


def test_load_mnist_reads_data_dir_env_and_uncompressed_files(tmp_path, monkeypatch):
    images, _ = write_mnist(tmp_path / "env", 12)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env"))
    x, _ = load_mnist("valid")
    np.testing.assert_allclose(x.numpy(), images[10:].reshape(2, 784) / 255.0, rtol=1e-6)
    monkeypatch.delenv("DATA_DIR")
    assert data.mnist_dir() == Path("~/.cache/course_data/mnist").expanduser()
    assert data.mnist_dir(tmp_path) == tmp_path  # the argument wins over $DATA_DIR
    plain = tmp_path / "plain"  # gunzipped files (no .gz) are found too
    plain.mkdir()
    pair = random_mnist(6, seed=1)
    for name, array in zip(TRAIN_FILES, pair, strict=True):
        (plain / name.removesuffix(".gz")).write_bytes(idx_bytes(array))
    x, y = load_mnist("train", data_dir=plain)
    np.testing.assert_array_equal(y.numpy(), pair[1][:5])


def test_load_mnist_test_split_uses_the_t10k_files(tmp_path):
    write_mnist(tmp_path, 12)
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("test", data_dir=tmp_path)
    message = str(info.value)
    assert "The MNIST test split needs the t10k files" in message
    assert "t10k-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert 'load_mnist(split="test", download=True)' in message
    images, labels = write_mnist(tmp_path, 7, names=TEST_FILES, seed=5)
    x, y = load_mnist("test", data_dir=tmp_path)
    assert x.shape == (7, 784)  # all of the test file
    np.testing.assert_array_equal(y.numpy(), labels)


def test_train_all_is_the_whole_training_file(tmp_path):
    images, labels = write_mnist(tmp_path, 12)
    x_all, y_all = load_mnist("train_all", data_dir=tmp_path)
    x_train, _ = load_mnist("train", data_dir=tmp_path)
    x_valid, _ = load_mnist("valid", data_dir=tmp_path)
    assert x_all.shape == (12, 784)
    np.testing.assert_array_equal(y_all.numpy(), labels)
    torch.testing.assert_close(x_all, torch.cat([x_train, x_valid]))


def test_mnist_protocol_follows_the_t10k_files(tmp_path):
    write_mnist(tmp_path, 12)
    protocol = data.mnist_protocol(tmp_path)
    assert (protocol.train_split, protocol.eval_split) == ("train", "valid")
    assert "validation split" in protocol.description and str(tmp_path) in protocol.description
    write_gz(tmp_path / TEST_FILES[0], idx_bytes(random_mnist(7)[0]))  # no labels: not enough
    assert data.mnist_protocol(tmp_path).eval_split == "valid"
    write_mnist(tmp_path, 7, names=TEST_FILES, seed=5)
    protocol = data.mnist_protocol(tmp_path)
    assert (protocol.train_split, protocol.eval_split) == ("train_all", "test")
    assert "official split" in protocol.description
    assert load_mnist(protocol.eval_split, data_dir=tmp_path)[0].shape == (7, 784)


def test_a_corrupt_test_file_is_reported_like_a_training_file(tmp_path):
    write_mnist(tmp_path, 12)
    write_mnist(tmp_path, 7, names=TEST_FILES, seed=5)
    (tmp_path / TEST_FILES[0]).write_bytes(b"not gzip at all")
    with pytest.raises(data.DataFileError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist("test", data_dir=tmp_path)


def test_load_mnist_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(data_dir=tmp_path / "empty")
    message = str(info.value)
    assert message.startswith("MNIST is missing: train-images-idx3-ubyte.gz, "
                              "train-labels-idx1-ubyte.gz not found in ")
    assert str(tmp_path / "empty") in message
    assert "load_mnist(download=True)" in message
    assert "python -m course_utils.data download" in message
    assert "DATA_DIR" in message
    # in Jupyter the message is shown without a traceback
    assert info.value._render_traceback_()[0].startswith("DataNotFoundError: MNIST is missing")


def test_load_mnist_binarize_is_fixed_and_dynamic_binarize_is_fresh(tmp_path):
    write_mnist(tmp_path, 120)
    x, _ = load_mnist("train", data_dir=tmp_path)
    b1, _ = load_mnist("train", data_dir=tmp_path, binarize=True)
    torch.manual_seed(0)  # the fixed binarization ignores the global random state
    b2, _ = load_mnist("train", data_dir=tmp_path, binarize=True)
    assert torch.equal(b1, b2) and set(b1.unique().tolist()) == {0.0, 1.0}
    assert abs(b1.mean().item() - x.mean().item()) < 0.01  # P(1) = intensity; 78,400 pixels
    assert torch.equal(b1 == 1, b1.bool()) and b1.dtype == torch.float32
    d1 = dynamic_binarize(x, torch.Generator().manual_seed(1))
    d2 = dynamic_binarize(x, torch.Generator().manual_seed(1))
    d3 = dynamic_binarize(x, torch.Generator().manual_seed(2))
    assert torch.equal(d1, d2) and not torch.equal(d1, d3)
    assert abs(d3.mean().item() - x.mean().item()) < 0.01
    assert torch.equal(dynamic_binarize(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1.0]))
    half = dynamic_binarize(torch.full((400, 500), 0.3, dtype=torch.float64))
    assert half.dtype == torch.float64 and abs(half.mean().item() - 0.3) < 0.005  # sd 0.0007


def _shifted_by_loop(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image (H, W) moved dy rows down and dx columns right, uncovered pixels 0."""
    out = torch.zeros_like(image)
    h, w = image.shape
    for r in range(h):
        for c in range(w):
            if 0 <= r - dy < h and 0 <= c - dx < w:
                out[r, c] = image[r - dy, c - dx]
    return out


def test_random_shift_moves_each_image_by_its_own_offset_within_range():
    images = torch.rand(300, 5, 6)
    shifted = random_shift(images.view(300, -1), (5, 6), 2, torch.Generator().manual_seed(0))
    assert shifted.shape == (300, 30)
    offsets = set()
    for image, out in zip(images, shifted.view(300, 5, 6), strict=True):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out, _shifted_by_loop(image, dy, dx))]
        assert len(matches) == 1  # random pixels: exactly one offset fits
        offsets.add(matches[0])
    assert len(offsets) == 25  # every offset in [-2, 2]² occurs among 300 images
    x = torch.rand(4, 30)
    assert random_shift(x, (5, 6), 0) is x
    again = random_shift(images.view(300, -1), (5, 6), 2, torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)


@pytest.mark.parametrize("x, shape, max_shift, match", [
    (torch.rand(4, 30), (5, 5), 1, "has 25 pixels"),
    (torch.rand(4, 5, 6), (5, 6), 1, r"\(B, H\*W\)"),
    (torch.rand(4, 30), (5, 6), 5, r"in \[0, 5\)"),
    (torch.rand(4, 30), (5, 6), 1.5, "whole number"),
    (torch.rand(4, 30), (5, 6), -1, "whole number"),
])
def test_random_shift_validates_input(x, shape, max_shift, match):
    with pytest.raises(ValueError, match=match):
        random_shift(x, shape, max_shift)


def test_dynamic_binarize_validates_input():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        dynamic_binarize(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="NaN"):
        dynamic_binarize(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="floating-point torch.Tensor"):
        dynamic_binarize(np.array([0.5]))
    with pytest.raises(TypeError):
        dynamic_binarize(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="generator is on cpu but x is on meta"):
        dynamic_binarize(torch.zeros(2, device="meta"), torch.Generator())


def test_load_mnist_validates_arguments(tmp_path):
    write_mnist(tmp_path, 12)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("validation", data_dir=tmp_path)
    with pytest.raises(TypeError, match="binarize must be True or False"):
        load_mnist(data_dir=tmp_path, binarize="yes")
    with pytest.raises(TypeError, match="download must be True or False"):
        load_mnist(data_dir=tmp_path, download=1)
    with pytest.raises(TypeError, match="data_dir must be a path"):
        load_mnist(data_dir=3)
    x, y = load_mnist(data_dir=tmp_path, device="meta")
    assert x.device.type == "meta" and y.device.type == "meta"


def test_load_mnist_wrong_shapes_and_values(tmp_path):
    images, labels = random_mnist(12)
    cases = {
        "flat": (images.reshape(12, 784), labels, r"holds uint8 images of shape \(12, 784\)"),
        "small": (images[:, :14, :14], labels, r"MNIST images are uint8 of shape \(N, 28, 28\)"),
        "float": (images.astype(np.float32), labels, "holds float32 images"),
        "labels": (images, labels + 10, "does not hold uint8 labels 0..9"),
        "count": (images, labels[:11], "has 12 images but train-labels-idx1-ubyte.gz has 11"),
    }
    for folder, (bad_images, bad_labels, message) in cases.items():
        (tmp_path / folder).mkdir()
        write_gz(tmp_path / folder / TRAIN_FILES[0], idx_bytes(bad_images))
        write_gz(tmp_path / folder / TRAIN_FILES[1], idx_bytes(bad_labels))
        with pytest.raises(DataFileError, match=message):
            load_mnist(data_dir=tmp_path / folder)


def test_load_mnist_corrupt_file_says_how_to_replace_it(tmp_path):
    images, labels = random_mnist(12)
    write_gz(tmp_path / TRAIN_FILES[0], idx_bytes(images)[:-100])
    write_gz(tmp_path / TRAIN_FILES[1], idx_bytes(labels))
    with pytest.raises(ValueError) as info:
        load_mnist(data_dir=tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz is truncated" in message
    assert "Delete it and download it again: load_mnist(download=True)" in message


# --------------------------------------------------------------------------- download


class _Server:
    """A static file server on 127.0.0.1 (port chosen by the OS) that counts its requests."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep pytest's output clean
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror(tmp_path):
    """Serve a tiny MNIST-format training pair; yield (server, served folder, checksums)."""
    served = tmp_path / "served"
    images, labels = random_mnist(12)
    served.mkdir()
    raws = {TRAIN_FILES[0]: idx_bytes(images), TRAIN_FILES[1]: idx_bytes(labels)}
    for name, raw in raws.items():
        write_gz(served / name, raw)
    server = _Server(served)
    yield server, served, {name: sha256(raw) for name, raw in raws.items()}
    server.close()


def test_download_right_files_pass_and_are_loadable(tmp_path, mirror):
    server, served, checksums = mirror
    target = tmp_path / "data"
    assert download_mnist(target, base_url=server.url, files=checksums) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(TRAIN_FILES)  # no leftovers
    assert (target / TRAIN_FILES[0]).read_bytes() == (served / TRAIN_FILES[0]).read_bytes()
    assert load_mnist("valid", data_dir=target)[0].shape == (2, 784)
    n_requests = len(server.requests)
    download_mnist(target, base_url=server.url, files=checksums)  # verified files are kept
    assert len(server.requests) == n_requests


def test_download_checks_the_uncompressed_payload_not_the_gzip(tmp_path, mirror):
    server, served, checksums = mirror
    raw = gzip.decompress((served / TRAIN_FILES[1]).read_bytes())
    (served / TRAIN_FILES[1]).write_bytes(gzip.compress(raw, compresslevel=1, mtime=12345))
    download_mnist(tmp_path / "data", base_url=server.url, files={TRAIN_FILES[1]:
                                                                    checksums[TRAIN_FILES[1]]})
    assert (tmp_path / "data" / TRAIN_FILES[1]).is_file()


def test_download_corrupt_file_is_removed_and_reported(tmp_path, mirror):
    server, served, checksums = mirror
    raw = bytearray(gzip.decompress((served / TRAIN_FILES[0]).read_bytes()))
    raw[500] ^= 0xFF  # one flipped byte
    write_gz(served / TRAIN_FILES[0], bytes(raw))
    target = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_mnist(target, base_url=server.url, files=checksums)
    message = str(info.value)
    assert f"could not download {TRAIN_FILES[0]}" in message
    assert f"{server.url}{TRAIN_FILES[0]}: checksum mismatch" in message
    assert f"expected {checksums[TRAIN_FILES[0]]}, got {sha256(bytes(raw))}" in message
    assert f"put it in {target}" in message
    assert list(target.iterdir()) == []  # neither the file nor a .part remains


def test_download_not_gzip_is_removed_and_reported(tmp_path, mirror):
    server, served, checksums = mirror
    (served / TRAIN_FILES[1]).write_bytes(b"<html>Access denied</html>")
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match="is not valid gzip data"):
        download_mnist(target, base_url=server.url, files={TRAIN_FILES[1]:
                                                             checksums[TRAIN_FILES[1]]})
    assert list(target.iterdir()) == []


def test_download_404_and_fallback_mirror(tmp_path, mirror):
    server, _, checksums = mirror
    target = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_mnist(target, base_url=server.url + "nowhere/", files=checksums)
    message = str(info.value)
    assert f"{server.url}nowhere/{TRAIN_FILES[0]}: HTTP 404" in message
    assert "Download it with a browser from one of these URLs and put it in" in message
    assert list(target.iterdir()) == []
    # the first mirror fails, the second one serves the file: that is enough
    download_mnist(target, base_url=[server.url + "nowhere", server.url], files=checksums)
    assert sorted(p.name for p in target.iterdir()) == sorted(TRAIN_FILES)


def test_download_network_error(tmp_path):
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=rf"127.0.0.1:{port}/a.gz: network error .*online"):
        download_mnist(tmp_path, base_url=f"http://127.0.0.1:{port}", files={"a.gz": "0" * 64})


def test_download_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="base_url"):
        download_mnist(tmp_path, base_url="not a url")
    with pytest.raises(ValueError, match="base_url"):
        download_mnist(tmp_path, base_url=[])
    with pytest.raises(ValueError, match="64 hex digits"):
        download_mnist(tmp_path, base_url="http://127.0.0.1/", files={"a.gz": "abc"})
    with pytest.raises(ValueError, match="plain file name"):
        download_mnist(tmp_path, base_url="http://127.0.0.1/", files={"../a.gz": "0" * 64})
    with pytest.raises(ValueError, match="non-empty dict"):
        download_mnist(tmp_path, base_url="http://127.0.0.1/", files={})


def test_load_mnist_downloads_only_when_asked(tmp_path, mirror, monkeypatch):
    server, _, checksums = mirror
    monkeypatch.setattr(data, "MNIST_MIRRORS", (server.url,))
    monkeypatch.setattr(data, "MNIST_SHA256", {**data.MNIST_SHA256, **checksums})
    with pytest.raises(DataNotFoundError):
        load_mnist(data_dir=tmp_path / "data")
    assert server.requests == []  # no download without download=True
    x, y = load_mnist("train", data_dir=tmp_path / "data", download=True)
    assert x.shape == (10, 784) and y.shape == (10,)
    assert sorted(server.requests) == sorted(f"/{name}" for name in TRAIN_FILES)


def test_known_checksums_are_the_standard_ones():
    assert data.MNIST_SHA256[TRAIN_FILES[0]] == (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db")
    assert data.MNIST_SHA256[TRAIN_FILES[1]] == (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5")
    assert set(data.MNIST_SHA256) == set(TRAIN_FILES + TEST_FILES)
    assert data.MNIST_MIRRORS[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


def test_download_command_line(tmp_path, mirror, monkeypatch, capsys):
    server, _, checksums = mirror
    monkeypatch.setattr(data, "MNIST_SHA256", {**data.MNIST_SHA256, **checksums})
    target = tmp_path / "data"
    data.main(["download", "--data-dir", str(target), "--train-only", "--base-url", server.url])
    assert f"MNIST is ready in {target}" in capsys.readouterr().out
    assert sorted(p.name for p in target.iterdir()) == sorted(TRAIN_FILES)


# --------------------------------------------------------------------------- bundled subset


def _uint8_rows(x: torch.Tensor) -> set[bytes]:
    """The images of x (N, 784) in [0, 1] as a set of their 784 pixel bytes."""
    return {row.tobytes() for row in (x * 255).round().to(torch.uint8).numpy()}


def test_mnist_subset_shapes_range_and_exact_balance():
    x, y = load_mnist_subset("train")
    x_test, y_test = load_mnist_subset("test")
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert x_test.shape == (2000, 784) and y_test.shape == (2000,)
    assert x.dtype == x_test.dtype == torch.float32 and y.dtype == y_test.dtype == torch.int64
    assert x.min() == 0.0 and x.max() == 1.0 and 0.0 <= x_test.min() and x_test.max() <= 1.0
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 1000))
    assert torch.equal(torch.bincount(y_test, minlength=10), torch.full((10,), 200))
    head = torch.bincount(y[:1000], minlength=10)  # shuffled: the first rows are balanced too
    assert head.min() >= 60 and head.max() <= 140
    pixels = x * 255  # the 8-bit pixels are kept exactly
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)


def test_mnist_subset_train_and_test_are_disjoint():
    x, _ = load_mnist_subset("train")
    x_test, _ = load_mnist_subset("test")
    train, test = _uint8_rows(x), _uint8_rows(x_test)
    assert len(train) == 10000 and len(test) == 2000  # no image twice
    assert not train & test  # and no test image among the training images


def test_mnist_subset_is_cached_checked_and_moves_to_device():
    path = data._subset_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.MNIST_SUBSET_SHA256
    load_mnist_subset("test")
    hits = data._subset_arrays.cache_info().hits
    x1, _ = load_mnist_subset("test")
    x2, _ = load_mnist_subset("test")
    assert data._subset_arrays.cache_info().hits == hits + 2  # decoded once only
    assert torch.equal(x1, x2) and x1.data_ptr() != x2.data_ptr()  # fresh tensors each call
    x, y = load_mnist_subset("test", device="meta")
    assert x.device.type == "meta" and y.device.type == "meta"
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist_subset("valid")


def test_mnist_subset_damaged_file_says_to_reinstall(tmp_path, monkeypatch):
    raw = bytearray(data._subset_path().read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte
    damaged = tmp_path / "mnist_subset.npz"
    damaged.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "_subset_path", lambda: damaged)
    with pytest.raises(DataFileError) as info:
        load_mnist_subset()
    message = str(info.value)
    assert f"The bundled MNIST subset {damaged} is damaged: its SHA-256 is {sha256(raw)}" in message
    assert f"expected {data.MNIST_SUBSET_SHA256}" in message
    assert "Reinstall the package" in message
    assert "python -m course_utils.data subset --from DIR" in message
    assert info.value._render_traceback_()[0].startswith("DataFileError: The bundled MNIST")
    monkeypatch.undo()  # the right file but another expected hash: rejected too
    monkeypatch.setattr(data, "MNIST_SUBSET_SHA256", "0" * 64)
    with pytest.raises(DataFileError, match="is damaged"):
        load_mnist_subset("test")


def test_mnist_subset_missing_file_says_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_subset_path", lambda: tmp_path / "mnist_subset.npz")
    with pytest.raises(DataNotFoundError) as info:
        load_mnist_subset()
    message = str(info.value)
    assert message.startswith(f"The bundled MNIST subset is missing: {tmp_path}")
    assert "Reinstall the package" in message
    assert "python -m course_utils.data subset --from DIR" in message
    assert isinstance(info.value, FileNotFoundError)


def _subset(source: Path, out: Path, capsys, train: int = 20, test: int = 2) -> str:
    """Run the subset command with small per-class counts; return the SHA-256 it prints."""
    data.main(["subset", "--from", str(source), "--out", str(out),
               "--train-per-class", str(train), "--test-per-class", str(test)])
    printed = capsys.readouterr().out
    assert f"wrote {out} ({out.stat().st_size:,} bytes)" in printed
    return printed.split("SHA-256 ")[1].split()[0]


def test_subset_command_is_balanced_split_aware_and_deterministic(tmp_path, capsys, monkeypatch):
    images, labels = write_mnist(tmp_path / "mnist", 600)  # train rows 0..499, valid 500..599
    first = _subset(tmp_path / "mnist", tmp_path / "a.npz", capsys)
    second = _subset(tmp_path / "mnist", tmp_path / "b.npz", capsys)
    raw = (tmp_path / "a.npz").read_bytes()
    assert first == second == sha256(raw) and raw == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    assert sorted(arrays) == ["test_images", "test_labels", "train_images", "train_labels"]
    assert arrays["train_images"].shape == (200, 28, 28)
    assert arrays["test_images"].shape == (20, 28, 28)
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert np.bincount(arrays["train_labels"], minlength=10).tolist() == [20] * 10
    assert np.bincount(arrays["test_labels"], minlength=10).tolist() == [2] * 10
    row_of = {image.tobytes(): i for i, image in enumerate(images)}  # random images: distinct
    for split, rows in (("train", range(500)), ("test", range(500, 600))):
        found = [row_of[image.tobytes()] for image in arrays[f"{split}_images"]]
        assert set(found) <= set(rows) and len(set(found)) == len(found)
        np.testing.assert_array_equal(labels[found], arrays[f"{split}_labels"])
        assert found != sorted(found)  # shuffled
    # the loader reads such a file once its checksum is the expected one
    monkeypatch.setattr(data, "_subset_path", lambda: tmp_path / "a.npz")
    monkeypatch.setattr(data, "MNIST_SUBSET_SHA256", first)
    x, y = load_mnist_subset("test")
    assert x.shape == (20, 784) and y.tolist() == arrays["test_labels"].tolist()


def test_subset_command_errors(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", 600)
    with pytest.raises(SystemExit, match=r"error: MNIST's valid rows \(500 to 599\) hold \d+ "
                                         r"images of the digit \d, fewer than the 50 per class"):
        _subset(tmp_path / "mnist", tmp_path / "out.npz", capsys, test=50)
    with pytest.raises(SystemExit, match="error: MNIST is missing"):
        _subset(tmp_path / "nowhere", tmp_path / "out.npz", capsys)
    with pytest.raises(SystemExit, match="train_per_class must be an int >= 1, got 0"):
        _subset(tmp_path / "mnist", tmp_path / "out.npz", capsys, train=0)
    assert not (tmp_path / "out.npz").exists() and list(tmp_path.glob(".*part")) == []
    with pytest.raises(SystemExit):  # --from is required
        data.main(["subset"])
    capsys.readouterr()


@pytest.mark.slow
def test_wheel_contains_the_subset(tmp_path):
    source = tmp_path / "src"  # a clean copy: no stale build/ folder can add the file
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "course_utils", source / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp_path / "wheel")],
                   cwd=source, check=True, timeout=120, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("course_utils-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read("course_utils/bundled/mnist_subset.npz")
    assert sha256(raw) == data.MNIST_SUBSET_SHA256


# --------------------------------------------------------------------------- load_images


def test_load_images_each_data_set(fake_mnist):
    digits = load_images("digits")
    assert isinstance(digits, ImageData) and digits.name == "digits"
    assert digits.image_shape == (8, 8)
    assert torch.equal(digits.x_train, data.load_digits("train")[0])
    assert torch.equal(digits.y_test, data.load_digits("test")[1])
    subset = load_images("mnist_subset")
    assert subset.image_shape == (28, 28)
    assert subset.x_train.shape == (10000, 784) and subset.x_test.shape == (2000, 784)
    assert torch.equal(subset.y_test, load_mnist_subset("test")[1])
    fake_mnist(60)
    mnist = load_images("mnist")
    assert mnist.image_shape == (28, 28)
    assert mnist.x_train.shape == (50, 784) and mnist.x_test.shape == (10, 784)
    assert torch.equal(mnist.x_test, load_mnist("valid")[0])  # valid is the test split
    on_meta = load_images("digits", device="meta")
    assert on_meta.x_train.device.type == "meta" and on_meta.y_test.device.type == "meta"


def test_load_images_reads_the_dataset_environment_variable(monkeypatch):
    monkeypatch.delenv("DATASET", raising=False)
    assert load_images().name == "mnist_subset"
    assert load_images(default="digits").name == "digits"
    monkeypatch.setenv("DATASET", " Digits\n")  # stripped and lower-cased
    assert load_images().name == "digits"
    assert load_images("mnist_subset").name == "mnist_subset"  # the argument wins
    monkeypatch.setenv("DATASET", "  ")
    assert load_images(default="digits").name == "digits"


def test_load_images_unknown_name_names_the_source_and_the_choices(monkeypatch):
    choices = "choose one of 'digits', 'mnist_subset', 'mnist'"
    with pytest.raises(ValueError) as info:
        load_images("cifar")
    assert str(info.value) == f"unknown image data set 'cifar' (from the name argument); {choices}"
    monkeypatch.setenv("DATASET", "Fashion")
    with pytest.raises(ValueError) as info:
        load_images()
    assert "'fashion' (from the DATASET environment variable)" in str(info.value)
    assert choices in str(info.value)


def test_image_data_head_describe_and_repr():
    digits = load_images("digits")
    assert digits.describe() == "digits: train (1438, 64), test (359, 64), 8×8, pixels in [0, 1]"
    assert repr(digits) == f"ImageData({digits.describe()})"
    small = digits.head(100, 20)
    assert small.x_train.shape == (100, 64) and small.y_train.shape == (100,)
    assert small.x_test.shape == (20, 64) and small.y_test.shape == (20,)
    assert torch.equal(small.x_test, digits.x_test[:20]) and small.image_shape == (8, 8)
    assert digits.x_train.shape == (1438, 64)  # the original is unchanged
    assert digits.head(5000, 5000).x_train.shape == (1438, 64)
    assert load_images("mnist_subset").head(3, 2).describe() == (
        "mnist_subset: train (3, 784), test (2, 784), 28×28, pixels in [0, 1]")
    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.name = "other"
    with pytest.raises(ValueError, match="n_test must be an int >= 0"):
        digits.head(10, -1)


def test_download_removes_what_a_killed_download_left(tmp_path, mirror):
    server, _, checksums = mirror
    target = tmp_path / "data"
    target.mkdir()
    stale = target / f".{TRAIN_FILES[0]}.abc123.part"  # as mkstemp names it
    stale.write_bytes(b"half a file")
    download_mnist(target, base_url=server.url, files=checksums)
    assert sorted(p.name for p in target.iterdir()) == sorted(TRAIN_FILES)


def test_download_stops_at_the_size_cap(tmp_path, mirror, monkeypatch):
    server, _, checksums = mirror
    monkeypatch.setattr(data, "MAX_DOWNLOAD_BYTES", 10)
    with pytest.raises(DownloadError, match="larger than any MNIST file"):
        download_mnist(tmp_path / "data", base_url=server.url, files=checksums)
    assert list((tmp_path / "data").iterdir()) == []


def test_the_data_command_line_runs_without_a_runpy_warning():
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                          "course_utils.data", "--help"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "found in sys.modules" not in run.stderr
