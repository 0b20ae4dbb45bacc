"""Measurement helpers shared by the benchmarks and the tests."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
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


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work on ``device`` (a no-op on the CPU), so wall times are real."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def wall_seconds(fn: Callable[[], object], repeats: int = 20, warmup: int = 3,
                 device: torch.device | str = "cpu") -> list[float]:
    """Wall times of ``repeats`` runs of ``fn()`` after ``warmup`` untimed runs; work on a GPU
    ``device`` is synchronised before each clock reading."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int = 20, warmup: int = 3,
                   device: torch.device | str = "cpu") -> float:
    """Median of :func:`wall_seconds`."""
    return statistics.median(wall_seconds(fn, repeats, warmup, device))


def copy_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 20, device: torch.device | str = "cpu") -> float:
    """Memory copy bandwidth of ``device`` in bytes/s: (bytes read + bytes written) / median copy time."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / median_seconds(lambda: dst.copy_(src), repeats, device=device)


def _cpuinfo(key: str) -> str:
    """The first ``key`` line's value in ``/proc/cpuinfo`` ("" where there is none)."""
    path = Path("/proc/cpuinfo")
    lines = path.read_text().splitlines() if path.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), "")


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows: every benchmark JSON names it."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_features() -> dict[str, bool]:
    """The vector and bf16 features that decide how fast the CPU paths run (x86 ``flags``; ARM's
    ``Features`` name bfloat16 ``bf16``)."""
    flags = set(_cpuinfo("flags").split()) | set(_cpuinfo("Features").split())
    features = {name: name in flags for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}
    return {**features, "arm_bf16": "bf16" in flags}


def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16, AMX or ARM's BF16); elsewhere
    oneDNN emulates bfloat16 convolutions in float32, which is slower than float32 itself."""
    features = cpu_features()
    return features["avx512_bf16"] or features["amx_bf16"] or features["arm_bf16"]


def machine() -> dict:
    """What a benchmark JSON records of the machine it ran on."""
    return {"cpu": cpu_name(), "cpu_features": cpu_features(), "platform": platform.platform(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
