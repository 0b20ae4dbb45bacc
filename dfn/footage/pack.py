"""``python -m dfn pack``: a video, a folder of images, or a left / right pair into dfn's HDF5 schema.

::

    python -m dfn pack drive.mp4 data/highway.h5                  # video -> "frames"
    python -m dfn pack frames/ data/highway.h5 --fps 10           # folder of images -> "frames"
    python -m dfn pack left/ right/ data/stereo.h5                # two sources -> "left", "right"
    python -m dfn pack drive.mp4 data/highway.h5 --size 128 128 --grayscale
    python -m dfn pack left/ right/ data/stereo.h5 --disparity disp/ # with ground truth
    python -m dfn pack frames/ data/video.h5 --flow flow/              # with ground truth

Frames are stored as ``uint8 (N, H, W, C)``, one chunk per frame, with the attributes ``source``
and ``fps`` (schema: :mod:`datamodules.frame_file`). ``--size H W`` keeps the aspect ratio: each
frame is cropped about its centre to the aspect ratio of ``H x W``, then resized (``--stretch``
resizes the whole frame instead); the attributes ``resize`` and ``crop`` record what was done.
A stereo file also gets ``disparity_range [low, high]``, its disparities in px at the stored
width as block matching estimates them (:mod:`dfn.footage.stereo_range`); training reads it to warn
when the filters cannot reach that far.
Ground truth (``--disparity``: one map per stereo pair, on the left view's grid; ``--flow``: one
field per frame, to the next frame; :mod:`dfn.footage.ground_truth` lists the formats) goes through the
same crop and resize, its values scaled to the new pixels. The file is written under a temporary name
beside the target and renamed when complete, so an error or Ctrl-C never leaves a half-written
file; an existing target is kept unless ``--overwrite``.

Videos are decoded with PyAV (FFmpeg's libraries as a Python package, ``pip install av``): it
ships its own FFmpeg in the wheel (nothing to install system-wide), decodes every common
container and codec (mp4, avi, mkv; H.264, MPEG-4, MJPEG ...), hands out one frame at a time as
numpy (memory stays flat on long videos) and reads the frame rate from the container. Image
folders are read with Pillow, in natural order of the file names (``2.png`` before ``10.png``).
"""
from __future__ import annotations

import argparse
import datetime
import re
from pathlib import Path
from typing import Iterator, Optional, Sequence

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dfn.atomic import written_whole
from dfn.footage.stereo_range import disparity_range
from dfn.errors import ConfigError
from dfn.footage.ground_truth import (DISPARITY_SUFFIXES, FLOW_SUFFIXES, GroundTruthError, ground_truth_files,
                              read_disparity, read_flow, resize_field)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}


class PackError(ConfigError):
    """An input that cannot be packed; the message names the file and the fix."""


def centre_crop(height: int, width: int, size: Sequence[int]) -> tuple[int, int, int, int]:
    """``[top, left, h, w]``: the largest box about the centre of a ``height x width`` frame with
    the aspect ratio of ``size (h, w)``."""
    if height * size[1] > width * size[0]:                   # frame taller than the target
        h = max(1, round(width * size[0] / size[1]))
        return (height - h) // 2, 0, h, width
    w = max(1, round(height * size[1] / size[0]))
    return 0, (width - w) // 2, height, w


class FrameSource:
    """Frames of one input, one at a time: ``uint8 (H, W, C)`` with ``C`` 1 or 3.

    Args:
        path: a video file or a folder of images.
        size: ``(height, width)`` to resize to, or ``None``.
        grayscale: store one luma channel.
        stretch: resize whole frames to ``size``; by default they are first cropped about their
            centre to its aspect ratio (:func:`centre_crop`).
    """

    def __init__(self, path: str | Path, size: Optional[Sequence[int]] = None, grayscale: bool = False,
                 stretch: bool = False) -> None:
        self.path, self.size, self.grayscale, self.stretch = Path(path), size, grayscale, stretch
        self.source_shape: Optional[tuple[int, int]] = None     # (H, W) of the frames as read
        if not self.path.exists():
            raise PackError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self.images = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                                 key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
            if not self.images:
                raise PackError(f"{self.path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
            self.count: Optional[int] = len(self.images)
            self.fps: Optional[float] = None
        else:
            self.images = []
            container = _open_video(self.path)
            stream = container.streams.video[0]
            self.count = stream.frames or None                  # 0: the container does not say
            self.fps = float(stream.average_rate) if stream.average_rate else None
            container.close()

    @property
    def crop(self) -> Optional[tuple[int, int, int, int]]:
        """``[top, left, h, w]`` cut from every frame before resizing, or ``None``."""
        if self.size is None or self.stretch or self.source_shape is None:
            return None
        box = centre_crop(*self.source_shape, self.size)
        return None if box[2:] == self.source_shape else box

    def _convert(self, image: Image.Image) -> np.ndarray:
        image = image.convert("L" if self.grayscale or image.mode in ("L", "I;16", "I") else "RGB")
        self.source_shape = (image.height, image.width)
        if self.crop is not None:
            top, left, h, w = self.crop
            image = image.crop((left, top, left + w, top + h))
        if self.size is not None and image.size != (self.size[1], self.size[0]):
            shrink = self.size[0] <= image.height and self.size[1] <= image.width
            image = image.resize((self.size[1], self.size[0]),
                                 Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        return array[..., None] if array.ndim == 2 else array

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.images:
            for path in self.images:
                try:
                    with Image.open(path) as image:
                        yield self._convert(image)
                except OSError as error:
                    raise PackError(f"{path}: cannot read this image ({error}); remove or replace it") from error
            return
        container = _open_video(self.path)
        try:
            for frame in container.decode(video=0):
                yield self._convert(frame.to_image())
        except Exception as error:                               # av.error.* on damaged streams
            if isinstance(error, PackError):
                raise
            raise PackError(f"{self.path}: decoding failed ({error}); the video may be damaged") from error
        finally:
            container.close()


def _open_video(path: Path):
    try:
        import av
    except ImportError as error:
        raise PackError("packing a video needs PyAV: pip install av (or pip install 'dfn[video]'); "
                        "a folder of images needs nothing more") from error
    try:
        container = av.open(str(path))
    except Exception as error:
        raise PackError(f"{path}: not a video PyAV can open ({error}); pass a video file (mp4, avi, "
                        "...) or a folder of images") from error
    if not container.streams.video:
        container.close()
        raise PackError(f"{path}: holds no video stream")
    return container


def pack(sources: Sequence[FrameSource], output: str | Path, names: Sequence[str], fps: Optional[float] = None,
         compression: Optional[str] = "lzf", overwrite: bool = False, progress: bool = True,
         ground_truth: Optional[Path] = None) -> Path:
    """Write each source as dataset ``names[i]`` of ``output``; returns the path. Stereo sources
    must yield the same number of frames of the same size. ``ground_truth``: a file or folder of
    disparity maps (stereo) or flow fields (video), one per frame."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise PackError(f"{output} already exists; nothing was written. Choose another name or pass "
                        "--overwrite to replace it")
    counts = {s.count for s in sources}
    if len(sources) > 1 and None not in counts and len(counts) > 1:
        raise PackError(f"left ({sources[0].path}: {sources[0].count} frames) and right "
                        f"({sources[1].path}: {sources[1].count} frames) differ in length; give both "
                        "views the same frames")
    with written_whole(output) as tmp:
        with h5py.File(tmp, "w") as f:
            n = _write(f, sources, names, compression, progress)
            if ground_truth is not None and n:
                _write_ground_truth(f, sources[0], ground_truth, "disparity" if len(sources) > 1 else "flow", n)
            if len(names) == 2 and n:
                _record_disparity_range(f, names, n)
            first = sources[0]
            f.attrs["resize"] = ("none" if first.size is None else "stretch" if first.stretch else
                                 "centre crop to the aspect ratio, then resize")
            if first.crop is not None:
                f.attrs["crop"] = list(first.crop)
            f.attrs["source"] = " ".join(str(s.path.resolve()) for s in sources)
            frame_rate = fps if fps is not None else sources[0].fps
            if frame_rate is not None:
                f.attrs["fps"] = float(frame_rate)
            f.attrs["packed_by"] = "python -m dfn pack"
            f.attrs["packed_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if n == 0:
            raise PackError(f"{sources[0].path}: no frames")
    return output


def _write(f: h5py.File, sources: Sequence[FrameSource], names: Sequence[str], compression: Optional[str],
           progress: bool) -> int:
    datasets: list[h5py.Dataset] = []
    n = 0
    total = sources[0].count
    bar = tqdm(total=total, unit="frame", desc=f"packing {names[0] if len(names) == 1 else 'stereo'}",
               disable=not progress)
    iterators = [iter(s) for s in sources]
    with bar:
        while True:
            frames = [next(it, None) for it in iterators]
            if all(x is None for x in frames):
                bar.total = n                                    # containers may miscount frames
                bar.refresh()
                return n
            if any(x is None for x in frames):
                short = sources[[x is None for x in frames].index(True)].path
                raise PackError(f"{short} ended after {n} frames while the other view goes on; give "
                                "both views the same frames")
            if not datasets:
                if len({x.shape for x in frames}) > 1:
                    raise PackError(f"left frames are {frames[0].shape}, right frames {frames[1].shape}; "
                                    "stereo views must be one size (or pass --size H W)")
                for name, frame in zip(names, frames):
                    datasets.append(f.create_dataset(name, shape=(0, *frame.shape), maxshape=(None, *frame.shape),
                                                     dtype=np.uint8, chunks=(1, *frame.shape),
                                                     compression=compression, fletcher32=True))
            for name, ds, frame, source in zip(names, datasets, frames, sources):
                if frame.shape != ds.shape[1:]:
                    raise PackError(f"{source.path}: frame {n} is {frame.shape}, earlier frames "
                                    f"{ds.shape[1:]}; all frames must be one size (or pass --size H W)")
                ds.resize(n + 1, axis=0)
                ds[n] = frame
            n += 1
            bar.update(1)


def _record_disparity_range(f: h5py.File, names: Sequence[str], frames: int, pairs: int = 16) -> None:
    """Attribute ``disparity_range [low, high]`` (px at the stored resolution), estimated by block
    matching on up to ``pairs`` pairs spread over the file (:mod:`dfn.footage.stereo_range`); absent
    where nothing matches with confidence (textureless views)."""
    picked = np.unique(np.linspace(0, frames - 1, min(pairs, frames)).round().astype(int))
    estimate = disparity_range(f[names[0]][picked], f[names[1]][picked])
    if estimate is not None:
        f.attrs["disparity_range"] = [round(v, 1) for v in estimate]


def _write_ground_truth(f: h5py.File, source: FrameSource, path: Path, kind: str, frames: int) -> None:
    """Dataset ``disparity (N, h, w)`` or ``flow (N, h, w, 2)`` float32, NaN = unknown, from the
    files at ``path``, cropped and resized as the frames of ``source`` were."""
    suffixes, read = (DISPARITY_SUFFIXES, read_disparity) if kind == "disparity" else (FLOW_SUFFIXES, read_flow)
    files = ground_truth_files(path, suffixes, frames)
    dataset, known = None, False
    for i, file in enumerate(files):
        values = read(file)
        if values.shape[:2] != source.source_shape:
            raise GroundTruthError(f"{file}: {kind} is {values.shape[1]}x{values.shape[0]} (width x height), "
                                   f"the frames {source.source_shape[1]}x{source.source_shape[0]}; ground "
                                   "truth must be at the frames' resolution")
        known = known or bool(np.isfinite(values).any())
        resized = resize_field(torch.from_numpy(values)[None], source.crop, source.size)[0].numpy()
        if dataset is None:
            dataset = f.create_dataset(kind, shape=(frames, *resized.shape), dtype=np.float32,
                                       chunks=(1, *resized.shape), compression="lzf", fletcher32=True)
        dataset[i] = resized
    if not known:
        raise GroundTruthError(f"{path}: every {kind} value is unknown (NaN, inf, or 0 in a KITTI PNG); "
                               "give ground truth with known pixels, or pack without it")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dfn pack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="SOURCE... OUTPUT",
                        help="one source (video file or image folder) -> 'frames', or two (left, right) "
                             "-> 'left' and 'right'; then the output .h5 file")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize every frame, first cropped about its centre to the aspect ratio of H x W")
    parser.add_argument("--stretch", action="store_true", help="with --size: resize whole frames, changing "
                        "their aspect ratio")
    parser.add_argument("--disparity", type=Path, metavar="PATH", help="stereo ground truth: a file or folder "
                        "of disparity maps on the left view's grid, one per pair (.pfm, KITTI 16-bit .png, .npy)")
    parser.add_argument("--flow", type=Path, metavar="PATH", help="video ground truth: a file or folder of flow "
                        "fields from each frame to the next, one per frame (.flo, .npy (H, W, 2))")
    parser.add_argument("--grayscale", action="store_true", help="store one luma channel")
    parser.add_argument("--fps", type=float, help="frame rate to record (default: the video's)")
    parser.add_argument("--compression", choices=["lzf", "gzip", "none"], default="lzf",
                        help="per-chunk compression (default lzf: fast to read)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if len(args.paths) not in (2, 3):
        parser.error("give SOURCE OUTPUT (video) or LEFT RIGHT OUTPUT (stereo)")
    *inputs, output = args.paths
    if args.disparity is not None and len(inputs) != 2 or args.flow is not None and len(inputs) != 1:
        parser.error("--disparity goes with a stereo pair (LEFT RIGHT OUTPUT), --flow with a video (SOURCE OUTPUT)")
    sources = [FrameSource(p, args.size, args.grayscale, args.stretch) for p in inputs]
    names = ["frames"] if len(sources) == 1 else ["left", "right"]
    written = pack(sources, output, names, args.fps, None if args.compression == "none" else args.compression,
                   args.overwrite, not args.no_progress, args.disparity or args.flow)
    with h5py.File(written, "r") as f:
        shapes = ", ".join(f"{name} {f[name].shape}" for name in f)
        estimate = f.attrs.get("disparity_range")
    print(f"wrote {written}: {shapes}")
    if estimate is not None:
        print(f"estimated disparity: {estimate[0]:g} to {estimate[1]:g} px at the stored width "
              f"(attribute disparity_range; block matching)")
