"""Memory while streaming training batches from HDF5 files of growing size: JSON to stdout.

For each size in ``--gigabytes`` it writes (once; kept in ``--folder``) a file of random RGB
frames (incompressible, stored uncompressed, one chunk per frame), then draws training batches
of the highway DataModule (random 6-frame segments, resized to 64x64 grayscale) through a
DataLoader with each of ``--workers`` worker counts until it has read as many frames as the file
holds. It reports the peak resident memory (RSS) of the main process (sampled during the run,
and its peak) and of the largest worker, and the read throughput. Flat memory means the peaks do not grow with the file size: frames are
read per sample, and nothing holds the file in memory (the OS page cache is not RSS).

    python benchmarks/hdf5_streaming.py --gigabytes 0.5 2.2 --workers 0 2 > results/hdf5_streaming.json
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np


def make_file(path: Path, gigabytes: float, side: int) -> dict:
    frame_bytes = side * side * 3
    frames = int(gigabytes * 1e9 // frame_bytes) + 1
    if not path.is_file():
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("frames", (frames, side, side, 3), np.uint8, chunks=(1, side, side, 3))
            for first in range(0, frames, 256):
                n = min(256, frames - first)
                ds[first:first + n] = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
            f.attrs["source"], f.attrs["fps"] = "benchmarks/hdf5_streaming.py (random frames)", 10.0
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return {"path": str(path), "frames": frames, "frame_shape": [side, side, 3],
            "file_bytes": path.stat().st_size}


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stream(path: str, workers: int, batch_size: int) -> dict:
    """Child process: read at least the file's number of frames as training batches."""
    from datamodules import VideoHDF5DataModule
    data = VideoHDF5DataModule(path, frames_in=3, frames_out=3, batch_size=batch_size, num_workers=workers,
                               batches_per_epoch=10**9, seed=0)
    batches = -(-data.source.length // (batch_size * 6))
    loader = data.train_dataloader()
    rss, start, seen = [], time.perf_counter(), 0
    for i, batch in enumerate(loader):
        seen += batch["frames"].shape[0] * batch["frames"].shape[1]
        if i % max(1, batches // 10) == 0:
            rss.append(round(vm_rss_mb(), 1))
        if i + 1 == batches:
            break
    seconds = time.perf_counter() - start
    del loader                                            # workers exit: their peaks become visible
    return {"batches": batches, "frames_read": seen, "seconds": seconds,
            "frames_per_second": seen / seconds, "main_rss_mb_during": rss,
            "main_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[0.5, 2.2])
    parser.add_argument("--side", type=int, default=256, help="stored frames are side x side RGB")
    parser.add_argument("--folder", default="data/bench", help="where the generated files are kept")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader worker counts to measure (0: all reading in the main process)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(stream(args.child, args.workers[0], args.batch_size)))
        return
    Path(args.folder).mkdir(parents=True, exist_ok=True)
    runs = []
    for gigabytes in args.gigabytes:
        info = make_file(Path(args.folder) / f"stream_{gigabytes:g}GB.h5", gigabytes, args.side)
        for workers in args.workers:
            out = subprocess.run([sys.executable, __file__, "--child", info["path"], "--workers", str(workers),
                                  "--batch_size", str(args.batch_size)], check=True, capture_output=True, text=True)
            runs.append({**info, "workers": workers, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(json.dumps({"machine": {"platform": platform.platform(), "memory_gb": _memory_gb()},
                      "batch_size": args.batch_size,
                      "sample": "6 consecutive frames, resized to 64x64 grayscale", "runs": runs}, indent=2))


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return float("nan")


if __name__ == "__main__":
    main()
