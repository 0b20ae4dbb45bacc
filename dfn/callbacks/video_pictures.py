"""Video and stereo prediction pictures: Figure 5 strips, Figure 7/9 flow-like filter maps (or,
for stereo, disparity maps), GIFs.

Flow maps: each pixel's filter reads, on average, from the offset ``E[(dy, dx)]`` over its taps;
the content therefore moves by ``-E[(dy, dx)]``, which is drawn in the usual optical-flow colours
(hue = direction, saturation = speed; see the colour wheel at the end of each row).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from dfn.contracts import HeldOutSequences, check
from dfn.callbacks.outputs import check_not_overwriting, publish_gif, publish_picture, run_folder, weights_step
from dfn.errors import ConfigError
from dfn.footage.ground_truth import resize_field
from dfn.ops.geometry import Window
from dfn.evaluation.readout import expected_shift, flow_on_source_grid, stereo_disparity
from dfn.pictures.viz import (color_wheel, disparity_bar, disparity_image, flow_image, frame_image,
                     grid, save_gif, save_png, video_strips)


def filter_readout(filters: Tensor, window: Window, predicted: Tensor, future: Tensor, disparity: bool) -> Tensor:
    """Filters ``(T, kh*kw, H, W)`` of one sequence -> their read-out in px at the working size:
    with ``disparity`` (stereo) ``(T, H, W)`` on the left view's grid, else the flow
    ``(T, H, W, 2)`` as ``(dx, dy)`` on the grid of the frame each step's filters were applied to
    (:mod:`dfn.evaluation.readout`). ``predicted``, ``future (T, C, H, W)`` settle colliding disparity claims."""
    offset = expected_shift(filters.float(), window)                          # (T, 2, H, W)
    return stereo_disparity(offset[:, 1], predicted, future) if disparity else flow_on_source_grid(offset)


def picture_scale(height: int, width: int, long_side: int = 256) -> int:
    """The nearest-neighbour upscaling that brings the long side of a picture to ``long_side``."""
    return max(1, -(-long_side // max(height, width)))


def sequence_pictures(observed: Tensor, future: Tensor, predicted: Tensor, filters: Optional[Tensor],
                      window: Optional[Window], disparity: bool = False) -> dict[str, Any]:
    """One sequence ``(T, C, H, W)`` (C = 1 or 3) -> ``{"strips": rgb, "readout": rgb or None,
    "gif": [rgb, ...], "values": the read-out (:func:`filter_readout`) or None}``, upscaled to
    at least 256 px on the long side. The read-out picture is a disparity map (stereo: blue 0 px
    to red the largest, labelled in px) or the flow in optical-flow colours with its colour wheel
    (labelled with the speed of full saturation, in px per frame)."""
    scale = picture_scale(*observed.shape[-2:])
    picture, values = None, None
    if filters is not None and window is not None:
        values = filter_readout(filters, window, predicted, future, disparity)
        labels = [f"t+{t + 1}" for t in range(len(values))]
        if disparity:
            limit = max(float(values.max()), 1e-6)
            bar = disparity_bar(observed.shape[-2] * scale, observed.shape[-1] * scale)
            picture = grid([[disparity_image(d, limit, scale) for d in values] + [bar]],
                           column_labels=labels + [f"0-{limit:.1f}px"])
        else:
            motion = values.permute(0, 3, 1, 2).flip(1)                           # (T, 2, H, W) as (dy, dx)
            limit = max(float(motion.norm(dim=1).max()), 1e-6)
            wheel = color_wheel(observed.shape[-1] * scale)
            picture = grid([[flow_image(m, limit, scale) for m in motion] + [wheel]],
                           column_labels=labels + [f"{limit:.1f}px"])
    truth = torch.cat([observed, future]).float()
    shown = torch.cat([observed, predicted.clamp(0, 1)]).float()
    gif = [np.concatenate([frame_image(a, scale), frame_image(b, scale)], axis=1) for a, b in zip(truth, shown)]
    return {"strips": video_strips(observed, future, predicted, scale), "readout": picture, "gif": gif,
            "values": values}


class VideoPictures(Callback):
    """After each validation and at the end of ``test``: pictures of the first sequence of the
    validation / first test set, written to ``<run_dir>/figures`` and logged (W&B).

    Args:
        disparity: draw the filters as a disparity map (stereo: Figure 7 right) instead of as
            motion (video: Figures 7 left and 9).
    """

    def __init__(self, disparity: bool = False) -> None:
        self.disparity = disparity

    def _publish(self, trainer: Trainer, pl_module: LightningModule, stage: str, dataset) -> None:
        frames = dataset[0]["frames"][None].to(pl_module.device)               # (1, T, 1, H, W)
        observed, future = pl_module.split_frames({"frames": frames})
        with torch.no_grad():
            predicted, filters = pl_module(observed, return_filters=True, future=future)
        pictures = sequence_pictures(observed[0].cpu(), future[0].cpu(), predicted[0].cpu(),
                                     None if filters is None else filters[0].cpu(), pl_module.filter_window,
                                     self.disparity)
        publish_picture(trainer, f"{stage}/strips", pictures["strips"], "input / truth / prediction")
        if pictures["readout"] is not None and self.disparity:
            publish_picture(trainer, f"{stage}/filters_as_disparity", pictures["readout"],
                            "horizontal shift the filters read from (blue 0 px to red the maximum)")
        elif pictures["readout"] is not None:
            publish_picture(trainer, f"{stage}/filters_as_flow", pictures["readout"],
                            "motion implied by the filters (hue: direction, saturation: speed)")
        gif = run_folder(trainer, "figures") / f"{stage}_step{weights_step(trainer):07d}.gif"
        save_gif(pictures["gif"], gif)
        publish_gif(trainer, f"{stage}/video", gif)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        check(trainer.datamodule, HeldOutSequences, "VideoPictures draws from the DataModule; the DataModule",
              "give it these (as the video and stereo DataModules of datamodules have) or drop VideoPictures")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.is_global_zero:
            self._publish(trainer, pl_module, "val", trainer.datamodule.val_set)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self._publish(trainer, pl_module, "test", trainer.datamodule.test_sets[0])


class VideoPredictionWriter(BasePredictionWriter):
    """``predict``: for every sequence ``seq<i>`` in ``output_dir`` (default
    ``<run_dir>/predictions``), never replacing files unless ``overwrite``:

    * pictures, upscaled to at least 256 px: ``_strips.png``, ``.gif`` and the read-out,
      ``_flow.png`` (with its colour wheel) or, with ``disparity`` (stereo), ``_disparity.png``
      (with its colour bar and range in px);
    * arrays (``.npy``, float32): ``_prediction.npy`` ``(T, H, W, C)`` in [0, 1], the predicted
      frames in the HDF5 schema's layout (clipped to [0, 1], as the pictures
      are: a dynamic bias can overshoot); for a DFN the read-out in px at the working size,
      ``_flow.npy`` ``(T, H, W, 2)`` as ``(dx, dy)`` per predicted step on the grid of the frame
      its filters were applied to, or ``_disparity.npy`` ``(H, W)`` on the left view's grid
      (positive: the right view shows the left view's pixel further left, the usual disparity);
    * with ``stored_resolution``, the read-out also at the resolution of the file's frames (the
      region in use: the crop, or the whole stored frame), resized and its values scaled by the
      width (and height) ratio: ``_flow_stored.npy`` or ``_disparity_stored.npy``.

    One ``.npy`` per sample and quantity: numpy alone reads it, and it sits beside the picture of
    the same name. Expects ``predict_step`` to return ``frames``, ``prediction``, ``filters`` (or
    ``None``) and ``index`` (the sequence numbers, or first frames).
    """

    def __init__(self, output_dir: Optional[str] = None, overwrite: bool = False, disparity: bool = False,
                 stored_resolution: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.overwrite, self.disparity = output_dir, overwrite, disparity
        self.stored_resolution = stored_resolution

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stored_resolution and getattr(trainer.datamodule, "stored_size", None) is None:
            raise ConfigError(f"stored_resolution: {type(trainer.datamodule).__name__} has no stored frames to "
                              "match (it generates them); set stored_resolution false")

    @property
    def _readout(self) -> str:
        """The read-out files' suffix."""
        return "_disparity" if self.disparity else "_flow"

    def _outputs(self, has_filters: bool) -> tuple[str, ...]:
        arrays = (self._readout + ".npy",) + ((self._readout + "_stored.npy",) if self.stored_resolution else ())
        return ("_strips.png", ".gif", "_prediction.npy") + ((self._readout + ".png", *arrays) if has_filters else ())

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        folder = Path(self.output_dir) if self.output_dir else run_folder(trainer, "predictions")
        names = [f"seq{int(i):05d}" for i in prediction["index"]]
        filters = prediction["filters"]
        check_not_overwriting([folder / f"{n}{ext}" for n in names for ext in self._outputs(filters is not None)],
                              self.overwrite)
        readout = self._readout
        for k, name in enumerate(names):
            observed, future = pl_module.split_frames({"frames": prediction["frames"][k:k + 1]})
            predicted = prediction["prediction"][k]
            pictures = sequence_pictures(observed[0], future[0], predicted,
                                         None if filters is None else filters[k], pl_module.filter_window,
                                         self.disparity)
            save_png(pictures["strips"], folder / f"{name}_strips.png")
            save_gif(pictures["gif"], folder / f"{name}.gif")
            frames = predicted.float().clamp(0, 1).permute(0, 2, 3, 1)          # as the pictures show them
            np.save(folder / f"{name}_prediction.npy", frames.numpy())
            if pictures["values"] is None:
                continue
            save_png(pictures["readout"], folder / f"{name}{readout}.png")
            values = pictures["values"].float()
            np.save(folder / f"{name}{readout}.npy", (values[0] if self.disparity else values).numpy())
            if self.stored_resolution:
                stored = resize_field(values, None, trainer.datamodule.stored_size)
                np.save(folder / f"{name}{readout}_stored.npy", (stored[0] if self.disparity else stored).numpy())
