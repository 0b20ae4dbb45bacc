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

from dfn.callbacks.outputs import check_not_overwriting, publish_gif, publish_picture, run_folder, weights_step
from dfn.ops.geometry import Window
from dfn.readout import disparity_on_left_grid, expected_shift, prediction_cost
from dfn.viz import (color_wheel, disparity_bar, disparity_image, flow_image, frame_image,
                     grid, save_gif, save_png, video_strips)


def sequence_pictures(observed: Tensor, future: Tensor, predicted: Tensor, filters: Optional[Tensor],
                      window: Optional[Window], disparity: bool = False) -> dict[str, Any]:
    """One sequence ``(T, C, H, W)`` (C = 1 or 3) -> ``{"strips": rgb, "flow": rgb or None, "gif": [rgb, ...],
    "disparity": (T, H, W) or None}``. With ``disparity`` (stereo) the filters are drawn as a
    disparity map on the left view's grid (:func:`dfn.readout.disparity_on_left_grid`) instead of
    as motion."""
    scale = max(1, 128 // observed.shape[-1])
    flow, shift = None, None
    if filters is not None and window is not None:
        offset = expected_shift(filters.float(), window)                  # (T, 2, H, W)
        if disparity:
            shift = disparity_on_left_grid(offset[:, 1], prediction_cost(predicted, future))   # (T, H, W)
            limit = max(float(shift.max()), 1e-6)
            bar = disparity_bar(observed.shape[-2] * scale, observed.shape[-1] * scale)
            flow = grid([[disparity_image(d, limit, scale) for d in shift] + [bar]],
                        column_labels=[f"t+{t + 1}" for t in range(len(shift))] + [f"0-{limit:.1f}px"])
        else:
            motion = -offset
            limit = max(float(motion.norm(dim=1).max()), 1e-6)
            wheel = color_wheel(observed.shape[-1] * scale)
            flow = grid([[flow_image(m, limit, scale) for m in motion] + [wheel]],
                        column_labels=[f"t+{t + 1}" for t in range(len(motion))] + [f"{limit:.1f}px"])
    truth = torch.cat([observed, future]).float()
    shown = torch.cat([observed, predicted.clamp(0, 1)]).float()
    gif = [np.concatenate([frame_image(a, scale), frame_image(b, scale)], axis=1) for a, b in zip(truth, shown)]
    return {"strips": video_strips(observed, future, predicted, scale), "flow": flow, "gif": gif,
            "disparity": shift}


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
        if pictures["flow"] is not None and self.disparity:
            publish_picture(trainer, f"{stage}/filters_as_disparity", pictures["flow"],
                            "horizontal shift the filters read from (blue 0 px to red the maximum)")
        elif pictures["flow"] is not None:
            publish_picture(trainer, f"{stage}/filters_as_flow", pictures["flow"],
                            "motion implied by the filters (hue: direction, saturation: speed)")
        gif = run_folder(trainer, "figures") / f"{stage}_step{weights_step(trainer):07d}.gif"
        save_gif(pictures["gif"], gif)
        publish_gif(trainer, f"{stage}/video", gif)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.is_global_zero:
            self._publish(trainer, pl_module, "val", trainer.datamodule.val_set)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self._publish(trainer, pl_module, "test", trainer.datamodule.test_sets[0])


class VideoPredictionWriter(BasePredictionWriter):
    """``predict``: for every sequence, ``seq<i>_strips.png``, ``seq<i>_flow.png`` (DFN only) and
    ``seq<i>.gif`` in ``output_dir`` (default ``<run_dir>/predictions``); never replaces files
    unless ``overwrite``. Expects ``predict_step`` to return ``frames``, ``prediction``,
    ``filters`` (or ``None``) and ``index`` (the sequence numbers, or first frames).

    With ``disparity`` (stereo) the filter picture is ``seq<i>_disparity.png`` and the read-out is
    also saved as ``seq<i>_disparity.npy``: ``float32 (H, W)`` on the left view's grid, the
    filters' expected horizontal offset in pixels of the working resolution brought from the
    right view's grid (:mod:`dfn.readout`); positive = the right view shows the left view's pixel
    further left (the usual disparity of a rectified pair).
    """

    def __init__(self, output_dir: Optional[str] = None, overwrite: bool = False, disparity: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.overwrite, self.disparity = output_dir, overwrite, disparity

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        folder = Path(self.output_dir) if self.output_dir else run_folder(trainer, "predictions")
        names = [f"seq{int(i):05d}" for i in prediction["index"]]
        filter_picture = "_disparity.png" if self.disparity else "_flow.png"
        outputs = ("_strips.png", ".gif", filter_picture) + (("_disparity.npy",) if self.disparity else ())
        check_not_overwriting([folder / f"{n}{ext}" for n in names for ext in outputs], self.overwrite)
        filters = prediction["filters"]
        for k, name in enumerate(names):
            observed, future = pl_module.split_frames({"frames": prediction["frames"][k:k + 1]})
            pictures = sequence_pictures(observed[0], future[0], prediction["prediction"][k],
                                         None if filters is None else filters[k], pl_module.filter_window,
                                         self.disparity)
            save_png(pictures["strips"], folder / f"{name}_strips.png")
            if pictures["flow"] is not None:
                save_png(pictures["flow"], folder / f"{name}{filter_picture}")
            if pictures["disparity"] is not None:
                np.save(folder / f"{name}_disparity.npy", pictures["disparity"][0].numpy().astype(np.float32))
            save_gif(pictures["gif"], folder / f"{name}.gif")
