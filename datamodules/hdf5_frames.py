"""Highway driving (paper 4.2) and stereo (paper 4.3) data streamed from dfn's HDF5 schema.

Both experiments read the same kind of file (:mod:`datamodules.frame_file`): the first
``train_fraction`` of the frames train and the rest test, as the paper (16,000 + 4,000 frames),
or explicit ``train_frames`` / ``test_frames`` ranges. A sample never crosses the split.

* :class:`VideoHDF5DataModule`: ``frames``; samples are segments of ``frames_in + frames_out``
  consecutive frames (3 + 3). Batches ``{"frames": (B, T, C, H, W), "index": (B,)}``, plus
  ``"flow": (B, T, H, W, 2)`` when the file has ground truth.
* :class:`StereoHDF5DataModule`: ``left`` / ``right``; samples are one frame of each view.
  Batches ``{"frames": (B, 2, C, H, W), "index": (B,)}`` with the left view first, so that the
  video model with 1 frame in and 1 out predicts the right view from the left, plus
  ``"disparity": (B, H, W)`` when the file has ground truth.

Training samples are augmented (:mod:`datamodules.augment`, ``augment``; ``null`` turns it off);
ground truth follows every crop, resize and flip, and is never used for training.
``test_on_training_frames`` fits and tests on the same frames: self-supervised fitting of one
recording, e.g. a single stereo pair whose disparity is wanted.

Training draws random samples from the training range as an endless seeded stream (resumable, a
pure function of seed, rank and step; :mod:`datamodules.stream`). ``test`` walks the test range
in order (a segment every ``test_stride`` frames). Validation (``val_from``) walks, by default,
the last ``val_fraction`` of the training frames, which training then never draws from, so the
best checkpoint is not chosen on the test set; ``val_from: test`` takes the validation samples
from the test walk instead (the paper has no validation split). Either way ``val_samples`` of the
walk, evenly spaced. ``index`` is a sample's first frame.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.augment import Augmentation, apply, draw
from datamodules.frame_file import FrameFile, FrameFileError, FrameTransform, split_ranges
from datamodules.stream import Batch, StreamDataModule
from dfn.errors import ConfigError, require_positive


class FrameSamples(Dataset):
    """Sample ``i`` = frames ``starts[i] : starts[i] + length`` of every dataset of ``source``,
    concatenated along time: ``{"frames": (views * length, C, H, W), "index": start}``, plus the
    ground truth of those frames (``"disparity": (H, W)`` for a stereo pair, ``"flow":
    (length, H, W, 2)``) when ``source`` has it."""

    def __init__(self, source: FrameFile, starts: Sequence[int], length: int) -> None:
        self.source, self.starts, self.length = source, list(starts), length

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> Batch:
        start = self.starts[i]
        sample = {"frames": torch.cat(self.source.read(start, start + self.length)), "index": torch.tensor(start)}
        if self.source.truth is not None:
            truth = self.source.read_truth(start, start + self.length)
            sample[self.source.truth] = truth[0] if self.source.truth == "disparity" else truth
        return sample


class HDF5DataModule(StreamDataModule):
    """Shared by the video and stereo DataModules; subclasses set ``datasets`` (HDF5 names)
    and ``sample_frames`` (consecutive frames per sample).

    Args:
        path: the HDF5 file (``python -m dfn pack`` makes one).
        crop, size, grayscale: :class:`datamodules.frame_file.FrameTransform` (default: the
            whole frame, resized to 64x64, grayscale, as the paper).
        train_fraction: leading share of the frames that trains (0.8); or
        train_frames, test_frames: explicit ``[start, stop)`` frame ranges.
        batch_size, batches_per_epoch: training batches and the length of an epoch.
        test_stride: frames between consecutive test samples (default: one sample length, so
            test samples do not overlap).
        val_from: ``"training"``: validate on the last ``val_fraction`` of the training frames,
            held out of training; ``"test"``: on samples of the test walk.
        val_fraction: share of the training frames held out for validation (at least one sample).
        val_samples: validation samples, evenly spaced over the validation walk.
        predict_samples: ``predict`` runs on the first samples of the test walk.
        seed, num_workers: data seed (``None`` = the global seed) and DataLoader workers.
        augment: training augmentation (:class:`datamodules.augment.Augmentation`), or ``None``.
        test_on_training_frames: train, validate and test on every frame (self-supervised fitting
            of one recording, or a single stereo pair); replaces the split and ``val_from``.
    """

    datasets: tuple[str, ...] = ()

    def __init__(self, path: str, sample_frames: int, crop: Optional[list[int]] = None,
                 size: Optional[list[int]] = (64, 64), grayscale: bool = True, train_fraction: float = 0.8,
                 train_frames: Optional[list[int]] = None, test_frames: Optional[list[int]] = None,
                 batch_size: int = 16, batches_per_epoch: int = 200, test_stride: Optional[int] = None,
                 val_from: str = "training", val_fraction: float = 0.1,
                 val_samples: int = 256, predict_samples: int = 8, seed: Optional[int] = None,
                 num_workers: int = 0, augment: Optional[Augmentation] = None,
                 test_on_training_frames: bool = False) -> None:
        super().__init__(seed, batches_per_epoch, num_workers)
        self.augment = augment
        require_positive("data.", batch_size=batch_size, val_samples=val_samples,
                         predict_samples=predict_samples, test_stride=test_stride or 1)
        if val_from not in ("training", "test"):
            raise ConfigError(f"data.val_from must be 'training' or 'test', got {val_from!r}")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        try:
            transform = FrameTransform(crop, size, grayscale)
            self.source = FrameFile(path, self.datasets, transform)
            if test_on_training_frames and (train_frames is not None or test_frames is not None):
                raise ConfigError("data.test_on_training_frames uses every frame for both; drop "
                                  "train_frames / test_frames, or set it to false")
            self.train_range, self.test_range = (
                (range(self.source.length), range(self.source.length)) if test_on_training_frames else
                split_ranges(self.source.length, train_fraction, train_frames, test_frames))
        except ConfigError:
            raise
        except ValueError as error:
            raise FrameFileError(f"data: {error}") from error
        self.sample_frames, self.batch_size = sample_frames, batch_size
        for name, frames in (("training", self.train_range), ("test", self.test_range)):
            if len(frames) < sample_frames:
                raise FrameFileError(
                    f"{self.source.path}: the {name} range (frames {frames.start}-{frames.stop}) holds "
                    f"{len(frames)} frames, fewer than one sample of {sample_frames}; use a longer "
                    "recording, fewer frames per sample, or other train_frames / test_frames")
        stride = test_stride or sample_frames
        self.test_starts = self._walk(self.test_range, stride)
        if val_from == "training" and not test_on_training_frames:
            self.train_range, val_range = self._hold_out(val_fraction)
            walk = self._walk(val_range, stride)
        else:
            walk = self.test_starts
        picks = torch.linspace(0, len(walk) - 1, min(val_samples, len(walk)))
        self.val_starts = sorted({walk[int(i)] for i in picks.round().long()})
        self.predict_samples = predict_samples

    @property
    def stored_size(self) -> tuple[int, int]:
        """``(height, width)`` of the stored pixels in use (the crop, or the whole stored frame):
        the resolution read-outs are returned at on request."""
        return tuple(self.source.transform.region(self.source.frame_shape)[2:])

    def _walk(self, frames: range, stride: int) -> list[int]:
        """First frames of the samples every ``stride`` frames that fit inside ``frames``."""
        return list(range(frames.start, frames.stop - self.sample_frames + 1, stride))

    def _hold_out(self, fraction: float) -> tuple[range, range]:
        """The training range split into what trains and, at its end, the validation frames
        (``fraction`` of it, at least one sample); no sample crosses the cut."""
        frames = self.train_range
        held = max(self.sample_frames, round(fraction * len(frames)))
        if len(frames) - held < self.sample_frames:
            raise FrameFileError(
                f"{self.source.path}: the training range (frames {frames.start}-{frames.stop}) is too short "
                f"to hold out {held} validation frames and still train on one sample of {self.sample_frames}; "
                "set data.val_from to test, or use a longer recording")
        cut = frames.stop - held
        return range(frames.start, cut), range(cut, frames.stop)

    def _train_batch(self, generator: torch.Generator) -> Batch:
        last_start = self.train_range.stop - self.sample_frames
        starts = torch.randint(self.train_range.start, last_start + 1, (self.batch_size,), generator=generator)
        region = self.source.transform.region(self.source.frame_shape)
        frames = []
        for start in starts.tolist():           # ground truth is not read: training never sees it
            sample = None if self.augment is None else draw(self.augment, generator, region,
                                                            self.source.transform.size)
            views = torch.cat(self.source.read(start, start + self.sample_frames, sample and sample.crop))
            frames.append(views if sample is None else apply(sample, views)[0])
        return {"frames": torch.stack(frames), "index": starts}

    def _samples(self, starts: Sequence[int]) -> FrameSamples:
        return FrameSamples(self.source, starts, self.sample_frames)

    def val_dataloader(self) -> DataLoader:
        return self._held_out_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._held_out_loader(self.test_sets[0])

    def predict_dataloader(self) -> DataLoader:
        return self._held_out_loader(self._samples(self.test_starts[:self.predict_samples]))

    @property
    def val_set(self) -> Dataset:
        """The validation samples (pictures after validation use the first)."""
        return self._samples(self.val_starts)

    @property
    def test_sets(self) -> list[Dataset]:
        """The test walk, as a one-element list (pictures after ``test`` use its first sample)."""
        return [self._samples(self.test_starts)]

    def teardown(self, stage: str) -> None:
        self.source.close()


class VideoHDF5DataModule(HDF5DataModule):
    """Highway driving: segments of ``frames_in + frames_out`` consecutive frames from ``frames``.

    Args:
        path: the HDF5 file with a ``frames`` dataset.
        frames_in, frames_out: observed and predicted frames (3 + 3, as the paper).
        **kwargs: see :class:`HDF5DataModule`.
    """

    datasets = ("frames",)

    def __init__(self, path: str, frames_in: int = 3, frames_out: int = 3,
                 augment: Optional[Augmentation] = Augmentation(hflip=True), **kwargs) -> None:
        require_positive("data.", frames_in=frames_in, frames_out=frames_out)
        super().__init__(path, frames_in + frames_out, augment=augment, **kwargs)
        self.save_hyperparameters()
        self.frames_in, self.frames_out = frames_in, frames_out


class StereoHDF5DataModule(HDF5DataModule):
    """Stereo: one frame of ``left`` and of ``right`` per sample, left first; the test walk
    visits every test frame unless ``test_stride`` says otherwise.

    Args:
        path: the HDF5 file with ``left`` and ``right`` datasets.
        augment: default gain, offset and crops. Vertical flips keep the disparity but hide the
            cue the network reads it from (lower in the view = nearer), so they are off;
            horizontal flips are refused.
        **kwargs: see :class:`HDF5DataModule`.
    """

    datasets = ("left", "right")

    def __init__(self, path: str, augment: Optional[Augmentation] = Augmentation(), **kwargs) -> None:
        if augment is not None and augment.hflip:
            raise ConfigError("data.augment.hflip would mirror a stereo pair without swapping its views "
                              "(the disparity would change sign); use vflip")
        super().__init__(path, 1, augment=augment, **kwargs)
        self.save_hyperparameters()

    @property
    def disparity_range(self) -> Optional[tuple[float, float]]:
        """The file's disparities as ``python -m dfn pack`` estimated them (attribute
        ``disparity_range``), in px at the working width; ``None`` where the file records none."""
        stored = self.source.attrs.get("disparity_range")
        if stored is None:
            return None
        size = self.source.transform.size
        scale = 1.0 if size is None else size[1] / self.source.transform.region(self.source.frame_shape)[3]
        return float(stored[0]) * scale, float(stored[1]) * scale
