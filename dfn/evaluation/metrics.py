"""Video prediction metrics, per frame, so that numbers sit beside published tables.

* ``bce``: binary cross-entropy summed over the pixels of a frame (the paper's Table 1 number,
  averaged over predicted frames and sequences); predictions are clipped to [eps, 1 - eps].
* ``mse`` / ``mae``: squared / absolute error summed over the pixels of a frame (OpenSTL's tables).
* ``ssim`` / ``psnr``: torchmetrics, data range 1, per frame; a frame predicted exactly (mean
  squared error below 1e-10) counts as 100 dB instead of infinity, so that means stay finite.

:class:`FrameCurves` accumulates each metric per predicted time step (synced across DDP ranks);
its means over steps are the headline numbers.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

NAMES = ("bce", "mse", "mae", "ssim", "psnr")
PSNR_CAP_DB = 100.0  # = 10 log10(1 / 1e-10): an exact frame instead of +inf


def frame_bce(prediction: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """``(B, T, C, H, W)`` -> binary cross-entropy summed over each frame ``(B, T)``, in float32
    at least (written out, not ``F.binary_cross_entropy``, which CUDA autocast refuses)."""
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    p, t = prediction.to(dtype).clamp(eps, 1 - eps), target.to(dtype)
    return -(t * p.log() + (1 - t) * (1 - p).log()).sum((2, 3, 4))


def frame_se(prediction: Tensor, target: Tensor) -> Tensor:
    """``(B, T, C, H, W)`` -> squared error summed over each frame ``(B, T)``."""
    return (prediction - target).pow(2).sum((2, 3, 4))


def frame_metrics(prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
    """``(B, T, C, H, W)`` in [0, 1] -> each metric per sequence and frame ``(B, T)``."""
    B, T = prediction.shape[:2]
    frames_p, frames_t = prediction.flatten(0, 1).clamp(0, 1), target.flatten(0, 1)
    ssim = structural_similarity_index_measure(frames_p, frames_t, data_range=1.0, reduction="none")
    psnr = peak_signal_noise_ratio(frames_p, frames_t, data_range=1.0, reduction="none",
                                   dim=(1, 2, 3)).clamp(max=PSNR_CAP_DB)
    return {"bce": frame_bce(prediction, target), "mse": frame_se(prediction, target),
            "mae": (prediction - target).abs().sum((2, 3, 4)),
            "ssim": ssim.view(B, T), "psnr": psnr.view(B, T)}


class FrameCurves(Metric):
    """Mean of every metric of :func:`frame_metrics` at each predicted step: ``compute()`` ->
    ``{name: (T,)}``."""

    full_state_update = False

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames
        for name in NAMES:
            self.add_state(f"sum_{name}", default=torch.zeros(frames, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        for name, values in frame_metrics(prediction.float(), target.float()).items():
            setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + values.double().sum(0))
        self.count += prediction.shape[0]

    def compute(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"sum_{name}") / self.count for name in NAMES}
