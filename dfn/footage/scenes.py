"""Stereo pairs and videos with known geometry, made from real photographs (scikit-image's).

Real textures, exact ground truth: every scene is a stack of layers, each a crop of a photograph
with a mask (the background covers everything, foreground layers are ellipses) and a disparity
field (stereo) or a velocity (video) of its own. Nearer layers are drawn over farther ones, so
there are occlusions and depth edges as in real footage.

* :func:`stereo_pair`: ``left, right (H, W)`` and the true ``disparity (H, W)`` on the left
  view's grid, in pixels: the right view shows at ``x`` what the left view shows at
  ``x + disparity`` (rectified, disparity >= 0 for points in front of the cameras). Layer
  disparities are planar (``a + b x + c y``) or smooth random fields at random depths
  (``layout="layers"``: only the pair tells the depth), or a street (``layout="street"``: a
  ground plane and upright objects on it, whose depth the left view alone tells, as the stereo
  DFN, which sees only the left view, needs).
* :func:`video`: ``frames (T, H, W)`` and ``flow (T, H, W, 2)`` as ``(dx, dy)``, the motion of
  each pixel of frame ``t`` to frame ``t + 1`` (NaN for the last frame): a camera pan (the
  background moves as one) and layers moving at their own constant velocities.

Right views are rendered by backward warping: the source position ``x_L`` of a right-view pixel
``x_R`` solves ``x_L = x_R + d(y, x_L)``, found by fixed-point iteration (exact for planar
fields; fields stay within ``|dd/dx| < 0.5`` so that it converges). Sampling is bilinear.
``python -m dfn scenes stereo|video FOLDER`` writes image folders and ground-truth files that
``python -m dfn pack`` takes. Nothing is downloaded: the photographs ship inside the scikit-image wheel
(``pip install scikit-image``, part of dfn's ``test`` and ``scenes`` extras).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from dfn.errors import ConfigError
from dfn.footage.ground_truth import write_flo, write_pfm

PHOTOGRAPHS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel",
               "coins", "immunohistochemistry")
FLAT_STEP, MAX_FLAT_SHARE = 0.01, 0.5   # a crop is too flat when most horizontal steps are tiny


def photographs() -> list[np.ndarray]:
    """scikit-image's bundled photographs as grayscale ``float32 (H, W)`` in [0, 1]."""
    try:
        from skimage import color, data
    except ImportError as error:
        raise ConfigError("scenes from photographs need scikit-image: pip install scikit-image "
                          "(or pip install 'dfn[scenes]')") from error
    images = []
    for name in PHOTOGRAPHS:
        image = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
        if image.ndim == 3:
            image = color.rgb2gray(image[..., :3])
        images.append(np.asarray(image, dtype=np.float32))
    return images


@dataclass(frozen=True)
class SceneSettings:
    """Args:
        size: ``(H, W)`` of the rendered views.
        layers: foreground layers per scene, drawn uniformly from ``[0, layers]``.
        max_disparity: largest disparity in pixels at ``size`` (stereo).
        max_speed: largest speed in pixels per frame at ``size`` (video).
        smooth: share of stereo layers whose disparity is a smooth random field (the rest planar).
        layout: stereo scenes as ``"layers"`` (random depths: nothing in the left view tells the
            disparity, only the pair does) or ``"street"`` (a ground plane whose disparity grows
            towards the bottom of the view, and upright objects standing on it, nearer ones lower
            and larger: the left view alone tells the depth, as in driving footage).
    """

    size: tuple[int, int] = (128, 128)
    layers: int = 3
    max_disparity: float = 10.0
    max_speed: float = 3.0
    smooth: float = 0.5
    layout: str = "layers"

    def __post_init__(self) -> None:
        if self.layout not in ("layers", "street"):
            raise ConfigError(f"scene layout must be 'layers' or 'street', got {self.layout!r}")


def _crop(photos: list[np.ndarray], size: tuple[int, int], rng: np.random.Generator) -> Tensor:
    """A random textured crop of ``size``: from a random photograph scaled so that the crop spans
    between a third and all of its shorter side; crops that are mostly flat (sky, paper) are drawn
    again (up to 20 times)."""
    for _ in range(20):
        crop = _crop_once(photos[int(rng.integers(len(photos)))], size, rng)
        if (crop.diff(dim=1).abs() < FLAT_STEP).float().mean() < MAX_FLAT_SHARE:
            break
    return crop


def _crop_once(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> Tensor:
    H, W = size
    scale = max(H / photo.shape[0], W / photo.shape[1]) * rng.uniform(1.0, 3.0)
    shape = (max(H, round(photo.shape[0] * scale)), max(W, round(photo.shape[1] * scale)))
    image = F.interpolate(torch.from_numpy(photo)[None, None], size=shape, mode="area" if scale < 1 else "bilinear")
    top = int(rng.integers(0, shape[0] - H + 1))
    left = int(rng.integers(0, shape[1] - W + 1))
    return image[0, 0, top:top + H, left:left + W].contiguous()


def _ellipse(size: tuple[int, int], rng: np.random.Generator) -> Tensor:
    """A random ellipse mask ``(H, W)`` in {0, 1}, between a tenth and a half of the image across."""
    H, W = size
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                          indexing="ij")
    cy, cx = rng.uniform(0.2, 0.8) * H, rng.uniform(0.2, 0.8) * W
    ry, rx = rng.uniform(0.1, 0.3) * H, rng.uniform(0.1, 0.3) * W
    angle = rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    return ((u / rx) ** 2 + (v / ry) ** 2 <= 1).float()


def _field(size: tuple[int, int], low: float, high: float, smooth: bool, rng: np.random.Generator) -> Tensor:
    """A disparity field ``(H, W)`` in ``[low, high]``: planar or smooth random, with
    ``|dd/dx| < 0.5`` either way."""
    H, W = size
    if smooth:
        coarse = torch.from_numpy(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
        field = F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=True)[0, 0]
        field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    else:
        y, x = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
        b, c = rng.uniform(-1, 1, size=2)
        field = b * x + c * y
        field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    span = min(high - low, 0.45 * W / 4)                      # keeps |dd/dx| < 0.5 for the cubic field
    start = rng.uniform(low, high - span)
    return start + span * field


def _sample(image: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Bilinear samples of ``image (H, W)`` at pixel coordinates ``x, y (H, W)`` (zeros outside)."""
    H, W = image.shape
    grid = torch.stack([2 * x / (W - 1) - 1, 2 * y / (H - 1) - 1], -1)[None]
    return F.grid_sample(image[None, None], grid, mode="bilinear", padding_mode="border",
                         align_corners=True)[0, 0]


def _source_x(disparity: Tensor, iterations: int = 30) -> Tensor:
    """``x_L (H, W)`` solving ``x_L = x_R + disparity(y, x_L)`` for every right-view pixel."""
    H, W = disparity.shape
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                          indexing="ij")
    source = x + disparity
    for _ in range(iterations):
        source = x + _sample(disparity, source, y)
    return source


def stereo_pair(photos: list[np.ndarray], rng: np.random.Generator,
                settings: SceneSettings = SceneSettings()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: ``left, right`` ``float32 (H, W)`` in [0, 1] and ``disparity float32 (H, W)``
    on the left grid (pixels at ``settings.size``; see the module docstring)."""
    H, W = settings.size
    layers = _street(settings, rng) if settings.layout == "street" else _random_depths(settings, rng)
    left, right, disparity = torch.zeros(H, W), torch.zeros(H, W), torch.zeros(H, W)
    y = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    for mask, field in layers:                                   # far to near
        texture = _crop(photos, (H, W), rng)
        left = mask * texture + (1 - mask) * left
        disparity = mask * field + (1 - mask) * disparity
        source = _source_x(field)
        seen = _sample(mask, source, y)
        right = seen * _sample(texture, source, y) + (1 - seen) * right
    return left.numpy(), right.clamp(0, 1).numpy(), disparity.numpy()


def _random_depths(settings: SceneSettings, rng: np.random.Generator) -> list[tuple[Tensor, Tensor]]:
    """``(mask, disparity field)`` far to near: a background and up to ``layers`` ellipses, each in
    its own band of disparities, planar or smooth."""
    size, count = settings.size, int(rng.integers(0, settings.layers + 1))
    bounds = np.linspace(0, settings.max_disparity, count + 2)     # nearer layers: larger disparities
    layers = []
    for k in range(count + 1):
        low, high = (0.0, bounds[1]) if k == 0 else (bounds[k], bounds[k + 1])
        mask = torch.ones(size) if k == 0 else _ellipse(size, rng)
        layers.append((mask, _field(size, float(low), float(high), rng.random() < settings.smooth, rng)))
    return layers


def _street(settings: SceneSettings, rng: np.random.Generator) -> list[tuple[Tensor, Tensor]]:
    """``(mask, disparity field)`` far to near: a ground plane, disparity growing linearly from the
    top row (the horizon just above the view) to ``max_disparity`` at the bottom row, and up to
    ``layers`` upright, fronto-parallel ellipses standing on it, each at the ground's disparity
    where it stands and as tall as that disparity makes it."""
    H, W = settings.size
    top = settings.max_disparity
    slope = 0.95 * top * rng.uniform(0.85, 1.0) / H              # disparity per row
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                          indexing="ij")
    ground = top * 0.05 + slope * y
    layers = [(torch.ones(H, W), ground)]
    feet = np.sort(rng.uniform(0.35 * H, H, size=int(rng.integers(0, settings.layers + 1))))
    for foot in feet:                                            # sorted: farther (higher) first
        d = float(ground[min(int(foot), H - 1), 0])
        ry = max(2.0, 0.45 * H * d / top * rng.uniform(0.6, 1.0))
        rx = ry * rng.uniform(0.4, 1.0)
        cx = rng.uniform(0.1, 0.9) * W
        mask = ((((x - cx) / rx) ** 2 + ((y - (foot - ry)) / ry) ** 2) <= 1).float()
        layers.append((mask, torch.full((H, W), d)))
    return layers


def video(photos: list[np.ndarray], frames: int, rng: np.random.Generator,
          settings: SceneSettings = SceneSettings()) -> tuple[np.ndarray, np.ndarray]:
    """One clip: ``frames float32 (T, H, W)`` in [0, 1] and ``flow float32 (T, H, W, 2)``
    ``(dx, dy)`` from each frame to the next (NaN for the last); see the module docstring."""
    H, W = settings.size
    speed = settings.max_speed
    margin = int(np.ceil(speed * frames)) + 1
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                          indexing="ij")
    layers = []
    for k in range(int(rng.integers(0, settings.layers + 1)) + 1):
        big = (H + 2 * margin, W + 2 * margin)
        texture = _crop(photos, big, rng)
        mask = torch.ones(big) if k == 0 else _ellipse(big, rng)
        velocity = rng.uniform(-speed, speed, size=2).astype(np.float32)   # (vx, vy) px per frame
        layers.append((texture, mask, velocity))
    out = np.zeros((frames, H, W), np.float32)
    flow = np.full((frames, H, W, 2), np.nan, np.float32)
    for t in range(frames):
        image, motion = torch.zeros(H, W), torch.zeros(H, W, 2)
        for texture, mask, (vx, vy) in layers:                  # content moves by +v each frame
            sx, sy = x + margin - vx * t, y + margin - vy * t
            seen = _sample(mask, sx, sy)
            image = seen * _sample(texture, sx, sy) + (1 - seen) * image
            cover = (seen > 0.5).float()[..., None]
            motion = cover * torch.tensor([vx, vy]) + (1 - cover) * motion
        out[t] = image.clamp(0, 1).numpy()
        if t < frames - 1:
            flow[t] = motion.numpy()
    return out, flow


def _save_gray(path: Path, image: np.ndarray) -> None:
    Image.fromarray((image * 255).round().clip(0, 255).astype(np.uint8)).save(path)


def write_stereo(folder: Path, pairs: int, seed: int = 0, settings: SceneSettings = SceneSettings()) -> Path:
    """``folder/left/NNNNN.png``, ``folder/right/...`` and ``folder/disparity/NNNNN.pfm``, ready for
    ``python -m dfn pack folder/left folder/right out.h5 --disparity folder/disparity``."""
    photos, rng = photographs(), np.random.default_rng(seed)
    for name in ("left", "right", "disparity"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        left, right, disparity = stereo_pair(photos, rng, settings)
        _save_gray(folder / "left" / f"{i:05d}.png", left)
        _save_gray(folder / "right" / f"{i:05d}.png", right)
        write_pfm(folder / "disparity" / f"{i:05d}.pfm", disparity)
    return folder


def write_video(folder: Path, clips: int, frames: int, seed: int = 0, settings: SceneSettings = SceneSettings()) -> Path:
    """``clips`` clips of ``frames`` frames one after another: ``folder/frames/NNNNN.png`` and
    ``folder/flow/NNNNN.flo`` (a clip's last frame has unknown flow: the next frame is another
    clip's), ready for ``python -m dfn pack folder/frames out.h5 --flow folder/flow``."""
    photos, rng = photographs(), np.random.default_rng(seed)
    for name in ("frames", "flow"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for c in range(clips):
        images, flow = video(photos, frames, rng, settings)
        for t in range(frames):
            i = c * frames + t
            _save_gray(folder / "frames" / f"{i:05d}.png", images[t])
            write_flo(folder / "flow" / f"{i:05d}.flo", flow[t])
    return folder


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dfn scenes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["stereo", "video"])
    parser.add_argument("folder", type=Path, help="output folder (created)")
    parser.add_argument("--count", type=int, default=100, help="stereo pairs, or video clips (default 100)")
    parser.add_argument("--frames", type=int, default=20, help="frames per video clip (default 20)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--max-disparity", type=float, default=10.0, help="pixels at --size (default 10)")
    parser.add_argument("--max-speed", type=float, default=3.0, help="pixels per frame at --size (default 3)")
    parser.add_argument("--layout", choices=["layers", "street"], default="layers",
                        help="stereo: random depths, or a street whose depth the left view shows (default layers)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    settings = SceneSettings(size=tuple(args.size), max_disparity=args.max_disparity, max_speed=args.max_speed,
                             layout=args.layout)
    if args.kind == "stereo":
        write_stereo(args.folder, args.count, args.seed, settings)
        print(f"wrote {args.count} pairs to {args.folder}: pack them with python -m dfn pack {args.folder}/left "
              f"{args.folder}/right OUT.h5 --disparity {args.folder}/disparity")
    else:
        write_video(args.folder, args.count, args.frames, args.seed, settings)
        print(f"wrote {args.count} clips of {args.frames} frames to {args.folder}: pack them with python -m dfn "
              f"pack {args.folder}/frames OUT.h5 --flow {args.folder}/flow")
