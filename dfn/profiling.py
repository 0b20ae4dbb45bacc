"""Measurement helpers shared by the benchmarks and the tests."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def saved_tensor_bytes(build_graph: Callable[[], object]) -> int:
    """Bytes autograd keeps for backward while ``build_graph()`` runs (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        build_graph()
    return sum(storages.values())


def median_seconds(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 20) -> float:
    """Memory copy bandwidth in bytes/s: (bytes read + bytes written) / median copy time."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    return 2 * nbytes / median_seconds(lambda: dst.copy_(src), repeats)
