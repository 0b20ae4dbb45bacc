"""Pictures: filters in a diverging colour map, images in grey, labelled grids, PNG files.

Everything returns ``uint8`` arrays ``(H, W, 3)`` (numpy), which W&B, PIL and the file tool take.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
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

