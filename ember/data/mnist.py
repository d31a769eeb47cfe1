"""MNIST and Fashion-MNIST from their standard IDX files (``train-images-idx3-ubyte.gz``
...), gzipped or raw, read from a folder; downloaded (urllib, MD5-checked) only when asked.

Example:
    >>> import ember
    >>> train = ember.data.MNIST("~/data", train=True, download=True)  # doctest: +SKIP
    >>> x, y = train[0]; x.shape, x.dtype                               # doctest: +SKIP
    ((1, 28, 28), ember.float32)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset

__all__ = ["read_idx", "MNIST", "FashionMNIST"]

# IDX type code -> big-endian dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: corrupt gzip file ({e})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzipped or raw) into a NumPy array, checking its
    magic number and that the data length matches the header.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
        >>> read_idx(p)
        array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number 0x{magic:08X}; expected 0x00000801 for "
            "labels or 0x00000803 for images)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes, needs {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    expected, found = count * dtype.itemsize, len(raw) - header
    if expected != found:
        raise ValueError(
            f"{path}: the IDX header says shape {tuple(dims)} ({expected} bytes of data) but "
            f"the file holds {found} bytes (truncated or corrupt)"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


class MNIST(Dataset):
    """The MNIST digits: ``(image float32 (1, 28, 28) in [0, 1], label int64)`` samples.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (``t10k-...`` for
    ``train=False``), with or without ``.gz``, in ``root`` and in ``root/MNIST/raw``
    (torchvision's layout). With ``download=True`` missing files are fetched into ``root``
    and MD5-checked; without it a missing file is an error naming what to put where.

    Attributes: ``data`` (uint8 ``(N, H, W)`` tensor), ``targets`` (int64 ``(N,)``),
    ``classes``.

    Example:
        >>> ds = MNIST("data/", train=False, download=True)  # doctest: +SKIP
        >>> len(ds)                                            # doctest: +SKIP
        10000
    """

    mirrors: list[str] = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    resources: list[tuple[str, str | None]] = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes: list[str] = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        download: bool = False,
        transform: Callable[[Tensor], Any] | None = None,
        target_transform: Callable[[Tensor], Any] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        prefix = "train" if train else "t10k"
        image_path = self._find(f"{prefix}-images-idx3-ubyte")
        label_path = self._find(f"{prefix}-labels-idx1-ubyte")
        if (image_path is None or label_path is None) and download:
            self.download()
            image_path = self._find(f"{prefix}-images-idx3-ubyte")
            label_path = self._find(f"{prefix}-labels-idx1-ubyte")
        missing = [
            f"{prefix}-{kind}(.gz)"
            for kind, p in (("images-idx3-ubyte", image_path), ("labels-idx1-ubyte", label_path))
            if p is None
        ]
        if missing:
            raise FileNotFoundError(
                f"{type(self).__name__}: {', '.join(missing)} not found in {self.root} (nor in "
                f"{self._raw_folder()}); pass download=True to fetch them (needs the network) "
                "or copy the IDX files there"
            )
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"{image_path}: expected uint8 images of shape (N, rows, cols), got "
                f"{images.dtype} {images.shape}"
            )
        if labels.ndim != 1:
            raise ValueError(f"{label_path}: expected 1-d labels, got shape {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(
                f"{type(self).__name__}: {image_path.name} holds {len(images)} images but "
                f"{label_path.name} holds {len(labels)} labels"
            )
        self.data = Tensor(images)
        self.targets = Tensor(labels.astype(np.int64))

    # -- files -----------------------------------------------------------------------------
    def _raw_folder(self) -> Path:
        return self.root / type(self).__name__ / "raw"

    def _find(self, base: str) -> Path | None:
        dotted = base.replace("-idx", ".idx")  # some archives unpack as train-images.idx3-ubyte
        for folder in (self.root, self._raw_folder()):
            for name in (base, base + ".gz", dotted, dotted + ".gz"):
                p = folder / name
                if p.is_file():
                    return p
        return None

    def download(self) -> None:
        """Fetch the files not already present into ``root`` (MD5-checked, written
        atomically). Raises ``RuntimeError`` naming the file when no mirror can be reached.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for filename, md5 in self.resources:
            if self._find(filename.removesuffix(".gz")) is not None:
                continue
            errors = []
            for mirror in self.mirrors:
                try:
                    _download(mirror + filename, self.root / filename, md5)
                    break
                except (urllib.error.URLError, OSError, ValueError) as e:
                    errors.append(f"{mirror}: {getattr(e, 'reason', e)}")
            else:
                raise RuntimeError(
                    f"{type(self).__name__}: could not download {filename} from any mirror "
                    f"(is the network available?): {'; '.join(errors)}. You can also download "
                    f"the IDX files by hand into {self.root}"
                )

    # -- samples ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.targets.shape[0]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img = self.data._data[index]
        x = Tensor((img.astype(np.float32) / 255.0)[None])
        y = Tensor(np.asarray(self.targets._data[index]))
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def get_batch(self, indices: np.ndarray) -> Any:
        """The collated batch for ``indices`` (falls back per sample under transforms)."""
        if self.transform is not None or self.target_transform is not None:
            return NotImplemented
        imgs = self.data._data[indices].astype(np.float32)
        imgs /= np.float32(255.0)  # division, as for single samples: bit-identical batches
        return [Tensor(imgs[:, None]), Tensor(self.targets._data[indices])]

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(root={str(self.root)!r}, split={split!r}, n={len(self)})"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: the same IDX format and API as :class:`MNIST`, with 10
    clothing classes; looks in ``root`` and ``root/FashionMNIST/raw``.

    Example:
        >>> FashionMNIST.classes[0]
        'T-shirt/top'
    """

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


def _download(url: str, dest: Path, md5: str | None, timeout: float = 60.0) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(f"MD5 mismatch for {url}: got {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
