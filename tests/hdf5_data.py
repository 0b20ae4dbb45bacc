"""Small HDF5 files in dfn's schema, made by the tests: moving textures and stereo planes."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def smooth_texture(rng: np.random.Generator, size: int, channels: int = 1, cutoff: float = 0.15) -> np.ndarray:
    """A periodic, low-pass random texture ``uint8 (size, size, channels)`` (blobs a few px wide)."""
    f = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    spectrum = np.fft.fft2(rng.standard_normal((channels, size, size))) * (radius < cutoff)
    field = np.fft.ifft2(spectrum).real
    field = (field - field.min()) / (field.max() - field.min())
    return (field.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def write_frames(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for name, frames in datasets.items():
            f.create_dataset(name, data=frames, chunks=(1, *frames.shape[1:]))
        f.attrs["source"], f.attrs["fps"] = "tests", 10.0
    return path


def moving_texture(path: Path, frames: int = 60, size: int = 32, velocity: tuple[int, int] = (1, 2),
                   channels: int = 1, seed: int = 0) -> Path:
    """``frames``: a periodic texture translating by ``velocity`` (dy, dx) pixels a frame."""
    texture = smooth_texture(np.random.default_rng(seed), 2 * size, channels)
    video = np.stack([np.roll(texture, (t * velocity[0], t * velocity[1]), axis=(0, 1))[:size, :size]
                      for t in range(frames)])
    return write_frames(path, frames=video)


def stereo_planes(path: Path, frames: int = 40, size: int = 32, disparities: tuple[int, int] = (2, 4),
                  seed: int = 0, cutoff: float = 0.35, swap_halves: bool = False) -> Path:
    """``left`` / ``right``: two fronto-parallel textured planes, the top half of the view at
    disparity ``disparities[0]`` and the bottom half at ``disparities[1]``: right[y, x] =
    left-camera scene at x + d (so the right view takes its pixel from further right). Fine
    texture (``cutoff`` in cycles per pixel) makes every shift visible. ``swap_halves``: a random
    half of the pairs swap the two disparities, so the left view alone cannot tell which is which;
    the truth is stored as ``disparity`` (frames, size, size)."""
    rng = np.random.default_rng(seed)
    margin = max(disparities)
    left, right, truth = [], [], []
    for _ in range(frames):
        scene = smooth_texture(rng, size + 2 * margin, cutoff=cutoff)[:size]   # (size, size + 2m, 1)
        top, bottom = disparities[::-1] if swap_halves and rng.random() < 0.5 else disparities
        d = np.where(np.arange(size) < size // 2, top, bottom)[:, None]
        x = np.arange(size)[None, :] + margin
        left.append(scene[:, margin:margin + size])
        right.append(np.take_along_axis(scene, (x + d)[..., None], axis=1))
        truth.append(np.broadcast_to(d, (size, size)).astype(np.float32))
    if not swap_halves:
        return write_frames(path, left=np.stack(left), right=np.stack(right))
    return write_frames(path, left=np.stack(left), right=np.stack(right), disparity=np.stack(truth))
