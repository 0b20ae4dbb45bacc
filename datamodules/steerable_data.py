"""Steerable-filter data (paper section 4.1): random images, random angles, analytically filtered targets.

Batch contract (every stage but predict)::

    image  (B, 1, S, S)  i.i.d. N(0, 1) pixels (white noise: every filter tap is identifiable)
    angle  (B,)          radians; training: uniform in [0, 2 pi); val/test: fixed held-out angles
    target (B, 1, S, S)  image filtered with the analytic filter of that angle (dfn.evaluation.analytic_steerable)
    filter (B, k, k)     the analytic filter itself, for the filter metrics and pictures

Predict batches hold only ``angle (B,)``. Training batches are generated on the fly from the
seed (``datamodules.stream``); validation and test sets are fixed by ``seed``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch.utils.data import DataLoader

from datamodules.stream import HELD_OUT_STREAM, Batch, StreamDataModule, batch_generator
from dfn.errors import ConfigError, require_positive
from dfn.ops import dynamic_conv
from dfn.evaluation.analytic_steerable import steerable_filters


class SteerableDataModule(StreamDataModule):
    """Random images and angles; the target is the image filtered with the steerable filter.

    Args:
        image_size: side ``S`` of the square images.
        batch_size: images per batch.
        batches_per_epoch: length of a training epoch (training data is an endless stream).
        filter_size: side ``k`` of the analytic filter (odd).
        sigma: of the Gaussian whose derivative is steered.
        val_angles: held-out angles: ``val_angles`` evenly spaced angles offset by half a step
            (36 -> 5, 15, ..., 355 degrees); each comes with ``val_images_per_angle`` images.
        val_images_per_angle: images per held-out angle.
        predict_angles_deg: angles (degrees) that ``predict`` turns into filters.
        seed: data seed; ``None`` takes the global seed of ``seed_everything`` (``PL_GLOBAL_SEED``).
        num_workers: DataLoader worker processes for training.
    """

    def __init__(self, image_size: int = 32, batch_size: int = 32, batches_per_epoch: int = 200,
                 filter_size: int = 9, sigma: float = 1.0, val_angles: int = 36,
                 val_images_per_angle: int = 4,
                 predict_angles_deg: Sequence[float] = (0.0, 45.0, 90.0, 139.2, 180.0, 242.9),
                 seed: Optional[int] = None, num_workers: int = 0) -> None:
        super().__init__(seed, batches_per_epoch, num_workers)
        require_positive("data.", image_size=image_size, batch_size=batch_size, val_angles=val_angles,
                         val_images_per_angle=val_images_per_angle)
        if filter_size < 1 or filter_size % 2 == 0:
            raise ConfigError(f"data.filter_size must be a positive odd number, got {filter_size}")
        if sigma <= 0:
            raise ConfigError(f"data.sigma must be > 0, got {sigma}")
        self.save_hyperparameters()
        self.image_size, self.batch_size = image_size, batch_size
        self.filter_size, self.sigma = filter_size, sigma
        self.n_val_angles, self.val_images_per_angle = val_angles, val_images_per_angle
        self.predict_angles_deg = list(predict_angles_deg)
        self.val_batch: Optional[Batch] = None

    def make_batch(self, angles: torch.Tensor, generator: torch.Generator) -> Batch:
        """Images for ``angles (B,)``, filtered with the analytic filters."""
        images = torch.randn(len(angles), 1, self.image_size, self.image_size, generator=generator)
        filters = steerable_filters(angles, self.filter_size, self.sigma)
        return {"image": images, "angle": angles, "target": dynamic_conv(images, filters),
                "filter": filters}

    def _train_batch(self, generator: torch.Generator) -> Batch:
        angles = torch.rand(self.batch_size, generator=generator) * 2 * math.pi
        return self.make_batch(angles, generator)

    def held_out_angles(self) -> torch.Tensor:
        """``(val_angles,)`` radians, half a step off the grid ``2 pi k / val_angles``."""
        return (torch.arange(self.n_val_angles) + 0.5) * (2 * math.pi / self.n_val_angles)

    def setup(self, stage: str) -> None:
        angles = self.held_out_angles().repeat_interleave(self.val_images_per_angle)
        self.val_batch = self.make_batch(angles, batch_generator(self.seed, HELD_OUT_STREAM, 0))


    def _fixed_loader(self) -> DataLoader:
        return DataLoader([self.val_batch], batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._fixed_loader()

    def test_dataloader(self) -> DataLoader:
        return self._fixed_loader()

    def predict_dataloader(self) -> DataLoader:
        angles = torch.tensor(self.predict_angles_deg, dtype=torch.float32) * math.pi / 180
        return DataLoader([{"angle": angles}], batch_size=None)
