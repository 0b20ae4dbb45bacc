"""Pictures: filters in a diverging colour map, images in grey, labelled grids, PNG files.

Everything returns ``uint8`` arrays ``(H, W, 3)`` (numpy), which W&B, PIL and the file tool take.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb.repeat(scale, axis=0).repeat(scale, axis=1)


def filter_image(filt: Tensor, scale: int = 16, limit: Optional[float] = None) -> np.ndarray:
    """``(k, k)`` filter -> RGB: blue negative, white zero, red positive, saturating at ``limit``
    (default: the largest absolute tap), each tap ``scale x scale`` pixels."""
    f = filt.detach().double().cpu()
    limit = float(f.abs().max()) if limit is None else limit
    v = (f / max(limit, 1e-12)).clamp(-1, 1).numpy()
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)
    return _upscale((rgb * 255).round().astype(np.uint8), scale)


def gray_image(image: Tensor, scale: int = 2) -> np.ndarray:
    """``(H, W)`` -> RGB grey, min-max normalised."""
    x = image.detach().double().cpu()
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
    g = (x.numpy() * 255).round().astype(np.uint8)
    return _upscale(np.stack([g] * 3, axis=-1), scale)


def frame_image(frame: Tensor, scale: int = 2) -> np.ndarray:
    """A video frame ``(C, H, W)`` in [0, 1] -> RGB: grey (min-max normalised) for one channel,
    colour (clipped to [0, 1]) for three."""
    if frame.shape[0] == 3:
        rgb = (frame.detach().double().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
        return _upscale(rgb.astype(np.uint8), scale)
    return gray_image(frame[0], scale)


def grid(rows: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str] = (),
         column_labels: Sequence[str] = (), pad: int = 4) -> np.ndarray:
    """Tiles of equal size in rows, on white, with optional text labels left and on top."""
    h, w = rows[0][0].shape[:2]
    left = 8 * max((len(s) for s in row_labels), default=0) + (pad if row_labels else 0)
    top = 14 if column_labels else 0
    n_cols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (left + n_cols * (w + pad) + pad, top + len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(column_labels):
        draw.text((left + pad + j * (w + pad), 1), label, fill="black")
    for i, row in enumerate(rows):
        y = top + pad + i * (h + pad)
        if i < len(row_labels):
            draw.text((pad, y + h // 2 - 6), row_labels[i], fill="black")
        for j, tile in enumerate(row):
            canvas.paste(Image.fromarray(tile), (left + pad + j * (w + pad), y))
    return np.asarray(canvas)


def save_png(rgb: np.ndarray, path: Path | str) -> None:
    """Write an RGB ``uint8`` array as PNG (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def steerable_figure(angles_deg: Sequence[float], generated: Tensor, analytic: Tensor,
                     image: Tensor, output: Tensor, target: Tensor) -> np.ndarray:
    """Figure 4 of the paper: generated vs analytic filter per angle, and input / output / target.

    Args:
        generated, analytic: ``(A, k, k)`` filters at ``angles_deg``.
        image, output, target: ``(H, W)`` one example.
    """
    limit = float(analytic.abs().max())
    filters = grid([[filter_image(f, limit=limit) for f in generated],
                    [filter_image(f, limit=limit) for f in analytic]],
                   row_labels=["generated", "analytic"],
                   column_labels=[f"{a:g} deg" for a in angles_deg])
    scale = max(1, generated.shape[-1] * 16 // image.shape[-1])
    examples = grid([[gray_image(t, scale) for t in (image, output, target)]],
                    column_labels=["input", "output", "target"])
    width = max(filters.shape[1], examples.shape[1])
    padded = [np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)
              for a in (filters, examples)]
    return np.concatenate(padded, axis=0)



def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,))
    for k, channels in enumerate(table):
        rgb[i == k] = np.stack([c[i == k] for c in channels], -1)
    return rgb


def flow_image(flow: Tensor, max_magnitude: Optional[float] = None, scale: int = 2) -> np.ndarray:
    """Motion ``(2, H, W)`` as ``(y, x)`` pixels -> RGB in the usual optical-flow colouring: hue is
    the direction, saturation the speed (full at ``max_magnitude``, default the largest)."""
    fy, fx = flow.detach().double().cpu().numpy()
    magnitude = np.hypot(fx, fy)
    limit = max_magnitude if max_magnitude is not None else max(float(magnitude.max()), 1e-12)
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    rgb = _hsv_to_rgb(hue, np.clip(magnitude / limit, 0, 1), np.ones_like(hue))
    return _upscale((rgb * 255).round().astype(np.uint8), scale)


def disparity_image(disparity: Tensor, max_disparity: float, scale: int = 2) -> np.ndarray:
    """Horizontal shift ``(H, W)`` in pixels -> RGB from blue (0, far) through green and yellow
    to red (``max_disparity``, near); negative shifts (not expected in rectified stereo) are black."""
    d = disparity.detach().double().cpu().numpy()
    t = np.clip(d / max(max_disparity, 1e-12), 0, 1)
    rgb = _hsv_to_rgb((1 - t) * 2 / 3, np.ones_like(t), np.where(d < 0, 0.0, 1.0))
    return _upscale((rgb * 255).round().astype(np.uint8), scale)


def disparity_bar(height: int, width: int) -> np.ndarray:
    """The legend of :func:`disparity_image`: 0 at the left to the maximum at the right."""
    ramp = torch.linspace(0, 1, width, dtype=torch.float64).expand(height, width)
    return disparity_image(ramp, 1.0, scale=1)


def color_wheel(size: int = 64) -> np.ndarray:
    """The legend of :func:`flow_image`: motion (dy, dx) at each point of a disc, radius = limit."""
    r = torch.linspace(-1, 1, size, dtype=torch.float64)
    y, x = torch.meshgrid(r, r, indexing="ij")
    wheel = flow_image(torch.stack([y, x]), max_magnitude=1.0, scale=1)
    wheel[(x ** 2 + y ** 2 > 1).numpy()] = 255
    return wheel


def video_strips(observed: Tensor, future: Tensor, predicted: Tensor, scale: int = 1) -> np.ndarray:
    """Figure 5: rows input / ground truth / prediction of one sequence, frames ``(T, C, H, W)``
    with C = 1 (grey) or 3 (colour)."""
    blank = np.full_like(frame_image(observed[0], scale), 255)
    n = max(len(observed), len(future))
    pad = lambda row: row + [blank] * (n - len(row))  # noqa: E731
    return grid([pad([frame_image(f, scale) for f in observed]),
                 pad([frame_image(f, scale) for f in future]),
                 pad([frame_image(f.clamp(0, 1), scale) for f in predicted])],
                row_labels=["input", "truth", "prediction"])


def save_gif(frames: Sequence[np.ndarray], path: Path | str, milliseconds: int = 200) -> None:
    """Write RGB ``uint8`` frames as a looping GIF (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=milliseconds, loop=0)
