"""Measurement helpers shared by the benchmarks and the tests."""
from __future__ import annotations

import math
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode


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


CONVOLUTIONS = (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default,
                torch.ops.aten.mm.default, torch.ops.aten.bmm.default)
"""Convolutions forward and backward, and matrix products (a 1x1 conv may run as one,
:func:`dfn.layers.pointwise_conv`)."""

ACTIVATIONS = (torch.ops.aten.leaky_relu.default, torch.ops.aten.leaky_relu_.default,
               torch.ops.aten.leaky_relu_backward.default)
"""The passes of the activations that follow the DFN's convolutions, forward and backward: on the
CPU each reads and writes its whole tensor, because PyTorch's public API cannot fuse them into
oneDNN's convolutions."""


class ConvolutionLog(TorchDispatchMode):
    """Records the convolutions and matrix products that run inside it (:data:`CONVOLUTIONS`),
    forward and backward, and the activation passes (:data:`ACTIVATIONS`), each as its operator
    and arguments, the tensors by their metadata alone (shape, strides, dtype, device): ``calls``
    maps each distinct call to how many times it ran. Use as a context manager around a training
    step (backward included), then :meth:`seconds_alone`."""

    OPERATORS = CONVOLUTIONS + ACTIVATIONS

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.OPERATORS:
            key = (func, tuple(_describe(a) for a in args))
            self.calls[key] = self.calls.get(key, 0) + 1
        return func(*args, **(kwargs or {}))

    def count(self, operators: tuple = CONVOLUTIONS) -> int:
        """How many calls of ``operators`` ran."""
        return sum(n for (func, _), n in self.calls.items() if func in operators)

    def seconds_alone(self, operators: tuple = CONVOLUTIONS, repeats: int = 5, warmup: int = 2) -> float:
        """The recorded calls of ``operators``: their total time when each runs alone on fresh
        tensors of its recorded layout (random values), the median of ``repeats`` runs per
        distinct call times its count. For the convolutions, a lower bound on a step's time for
        as long as they run on this library; the activations' passes add to it."""
        total = 0.0
        for (func, described), count in self.calls.items():
            if func not in operators:
                continue
            args = [_materialise(a) for a in described]
            device = next(a.device for a in args if isinstance(a, torch.Tensor))
            total += count * median_seconds(lambda: func(*args), repeats, warmup, device)
        return total

    def multiply_adds(self) -> int:
        """Multiply-adds of the recorded forward convolutions (each backward call does one or two
        times as many: input and weight gradients; matrix products are not counted): each output
        pixel's taps, or for a transposed convolution each input pixel's (its weights are
        ``(C_in, C_out / groups, kh, kw)``)."""
        total = 0
        for (func, described), count in self.calls.items():
            if func is torch.ops.aten.convolution.default:
                x, weight, transposed = described[0], described[1], described[6]
                out = torch.ops.aten.convolution.default(*(_materialise(a, "meta") for a in described))
                pixels = math.prod(x[1]) if transposed else out.numel()
                total += count * pixels * math.prod(weight[1][1:])
        return total


def _describe(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.stride()), value.dtype, value.device)
    return tuple(value) if isinstance(value, list) else value


def _materialise(value: object, device: torch.device | str | None = None) -> object:
    """A described tensor made anew (random values over its own storage, so expanded and
    overlapping layouts stay as recorded), on ``device`` if given (``"meta"``: shapes only)."""
    if not (isinstance(value, tuple) and len(value) == 5 and value[0] == "tensor"):
        return list(value) if isinstance(value, tuple) else value
    _, shape, stride, dtype, own_device = value
    size = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if all(shape) else 0
    storage = torch.empty(size, dtype=dtype, device=device or own_device)
    if storage.device.type != "meta":
        storage.normal_()
    return storage.as_strided(shape, stride)
