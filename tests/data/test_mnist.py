"""IDX reading and the MNIST / Fashion-MNIST datasets, on small files the tests write (no
network: downloads are tested through file:// mirrors)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.data import MNIST, DataLoader, FashionMNIST, read_idx


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(dtype).tobytes()


def write_split(folder: Path, prefix: str, n: int, gz: bool, seed: int = 0, hw=(4, 5)):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *hw), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    for name, arr in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(arr)
        (folder / (name + suffix)).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    images, labels = write_split(tmp_path, "train", 6, gz)
    t_images, t_labels = write_split(tmp_path, "t10k", 3, gz, seed=1)
    ds = MNIST(tmp_path)
    assert len(ds) == 6
    np.testing.assert_array_equal(ds.data.numpy(), images)
    assert ds.targets.dtype == ember.int64 and ds.targets.tolist() == labels.tolist()
    x, y = ds[2]
    assert x.shape == (1, 4, 5) and x.dtype == ember.float32
    np.testing.assert_allclose(x.numpy()[0], images[2] / 255.0, rtol=1e-6)
    assert y.item() == labels[2]
    test = MNIST(str(tmp_path), train=False)
    assert len(test) == 3 and test.targets.tolist() == t_labels.tolist()
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 4, 5) and yb.tolist() == labels[:4].tolist()
    np.testing.assert_allclose(xb.numpy()[:, 0], images[:4] / 255.0, rtol=1e-6)


def test_mnist_torchvision_layout_and_transform(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images, _ = write_split(raw, "t10k", 2, gz=True)
    ds = FashionMNIST(tmp_path, train=False, transform=lambda t: t * 2)
    np.testing.assert_allclose(ds[1][0].numpy()[0], images[1] / 255.0 * 2, rtol=1e-6)
    assert ds.classes[9] == "Ankle boot"
    with pytest.raises(FileNotFoundError, match="MNIST: train-images-idx3-ubyte"):
        MNIST(tmp_path)  # MNIST looks in root/MNIST/raw, not FashionMNIST's folder


def test_missing_files_error_names_them(tmp_path):
    write_split(tmp_path, "train", 2, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte\(.gz\).*download=True"):
        MNIST(tmp_path)


def test_read_idx_dtypes(tmp_path):
    for code, dtype in ((0x08, np.uint8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32)):
        arr = (np.arange(12) - 3).reshape(3, 4).astype(dtype)
        if dtype == np.uint8:
            arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
        p = tmp_path / f"a{code}"
        p.write_bytes(idx_bytes(arr, code))
        out = read_idx(p)
        assert out.dtype == dtype and out.dtype.isnative
        np.testing.assert_array_equal(out, arr)


def test_corrupt_files_raise_clear_errors(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    good = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    p.write_bytes(b"\x12\x34\x56\x78" + good[4:])
    with pytest.raises(ValueError, match=r"not an IDX file \(magic number 0x12345678"):
        read_idx(p)
    p.write_bytes(good[:-5])
    with pytest.raises(
        ValueError, match=r"shape \(2, 3, 3\) \(18 bytes of data\) but the file holds 13"
    ):
        read_idx(p)
    p.write_bytes(good[:2])
    with pytest.raises(ValueError, match="too short"):
        read_idx(p)
    p.write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(p)


def test_mnist_validates_contents(tmp_path):
    write_split(tmp_path, "train", 3, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(
        ValueError, match="holds 3 images but train-labels-idx1-ubyte holds 4 labels"
    ):
        MNIST(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 4), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, rows, cols\)"):
        MNIST(tmp_path)


def test_download_from_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images, labels = write_split(mirror, "t10k", 3, gz=True)
    write_split(mirror, "train", 2, gz=True)

    def md5(name):
        return hashlib.md5((mirror / name).read_bytes()).hexdigest()

    class LocalMNIST(MNIST):
        mirrors = ["file:///nonexistent-ember-mirror/", mirror.as_uri() + "/"]
        resources = [(n, md5(n)) for n, _ in MNIST.resources]

    root = tmp_path / "root"
    ds = LocalMNIST(root, train=False, download=True)
    assert ds.targets.tolist() == labels.tolist()
    assert sorted(p.name for p in root.iterdir()) == sorted(n for n, _ in MNIST.resources)
    LocalMNIST(root, train=False, download=True)  # present: nothing fetched again

    class BadChecksum(MNIST):
        mirrors = [mirror.as_uri() + "/"]
        resources = [(n, "0" * 32) for n, _ in MNIST.resources]

    with pytest.raises(RuntimeError, match="MD5 mismatch"):
        BadChecksum(tmp_path / "other", download=True)
    assert not any((tmp_path / "other").iterdir())  # no partial files left behind


def test_download_without_network_is_a_clear_error(tmp_path):
    class Offline(MNIST):
        mirrors = ["file:///nonexistent-ember-mirror/"]

    with pytest.raises(
        RuntimeError, match=r"could not download train-images-idx3-ubyte.gz.*network"
    ):
        Offline(tmp_path, download=True)
