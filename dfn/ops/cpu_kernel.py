"""Fast path on the CPU: the fused C kernels of ``cpu_kernels.c`` for the shared form.

The C file is compiled on first use with the system C compiler (``$CC``, else ``cc``) into
``$DFN_CACHE_DIR`` (default ``~/.cache/dfn``), keyed by the source, the flags and the processor, and
loaded with ctypes. Samples run in parallel on ``torch.get_num_threads()`` OpenMP threads of
torch's own OpenMP runtime (see the C file). Float32 and float64 CPU tensors use it; everything else, and every
machine without a compiler, runs the pure-PyTorch path of :mod:`dfn.ops.local_filter`, which
computes the same values. ``DFN_CPU_KERNEL=0`` switches the fast path off.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import torch
from torch import Tensor

from dfn.atomic import written_whole

SOURCE = Path(__file__).with_name("cpu_kernels.c")
FLAG_SETS = (["-O3", "-march=native", "-fopenmp", "-std=c99", "-shared", "-fPIC"],
             ["-O3", "-std=c99", "-shared", "-fPIC"])     # fallback: portable, serial
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def _cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dfn"
    return Path(os.environ.get("DFN_CACHE_DIR", default)) / "kernels"


def _processor_id() -> str:
    """The CPU model and feature flags, so that a cache shared by several machines stays valid."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "".join(next((line for line in lines if line.startswith(key)), "")
                       for key in ("model name", "flags"))
    except OSError:
        return platform.processor() + platform.machine()


def _compile(compiler: str, flags: list[str], target: Path) -> None:
    """Compile into a temporary file next to ``target``, then rename it (atomic)."""
    with written_whole(target, suffix=".so") as tmp:
        subprocess.run([compiler, *flags, "-o", str(tmp), str(SOURCE)], check=True,
                       capture_output=True, text=True, timeout=120)


@functools.lru_cache(maxsize=None)
def library() -> Optional[ctypes.CDLL]:
    """The compiled kernels, or ``None`` (with one warning) when they cannot be built."""
    if os.environ.get("DFN_CPU_KERNEL", "1") == "0":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        warnings.warn("dfn: no C compiler found ($CC or cc); dynamic local filtering runs its "
                      "slower pure-PyTorch path. Install gcc or clang for the fused CPU kernel.")
        return None
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *flags, _processor_id()])
                             .encode()).hexdigest()[:16]
        target = _cache_dir() / f"cpu_kernels-{key}.so"
        try:
            if not target.exists():
                _compile(compiler, flags, target)
            return ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as error:
            errors.append(f"{' '.join(flags)}: {getattr(error, 'stderr', None) or error}")
    warnings.warn("dfn: could not build the fused CPU kernel, using the pure-PyTorch path:\n"
                  + "\n".join(errors))
    return None


_enabled = True


@contextmanager
def fused(enabled: bool) -> Iterator[None]:
    """``with fused(False):`` runs the pure-PyTorch path (for comparisons and benchmarks)."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def usable(*tensors: Tensor) -> bool:
    """True when the fused kernel can run on these tensors (CPU, one dtype of float32/64)."""
    dtype = tensors[0].dtype
    return (_enabled and dtype in _SUFFIX and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
            and library() is not None)


def _run(name: str, dtype: torch.dtype, *args) -> None:
    """Call kernel ``name`` (float32 or float64 variant) with tensors passed as pointers."""
    fn = getattr(library(), f"{name}_{_SUFFIX[dtype]}")
    c_args = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, Tensor) else ctypes.c_long(a)
              for a in args]
    if fn(*c_args, ctypes.c_int(torch.get_num_threads())) != 0:
        raise MemoryError(f"dfn: {name} could not allocate its padded scratch image")


def _filter_strides(f: Tensor) -> tuple[Tensor, int, int, int]:
    """``f (B, T, H, W)`` with unit column stride, and its batch / tap / row strides."""
    if f.stride(3) != 1 and f.shape[3] > 1:
        f = f.contiguous()
    return f, f.stride(0), f.stride(1), f.stride(2)


def _image_op(name: str, image: Tensor, f: Tensor, kh: int, kw: int) -> Tensor:
    """The two kernels that map (image, shared filters) to an image: forward and grad_input."""
    image = image.contiguous()
    f, fsb, fst, fsh = _filter_strides(f)
    B, C, H, W = image.shape
    out = torch.empty_like(image)
    _run(name, image.dtype, image, f, out, C, H, W, kh, kw, fsb, fst, fsh, B)
    return out


def forward(x: Tensor, f: Tensor, kh: int, kw: int) -> Tensor:
    """``x (B, C, H, W)``, shared ``f (B, kh*kw, H, W)`` -> ``(B, C, H, W)``."""
    return _image_op("dlf_forward", x, f, kh, kw)


def grad_input(f: Tensor, g: Tensor, kh: int, kw: int) -> Tensor:
    """Shared ``f (B, kh*kw, H, W)``, ``g (B, C, H, W)`` -> ``dx (B, C, H, W)``."""
    return _image_op("dlf_grad_input", g, f, kh, kw)


def grad_filters(x: Tensor, g: Tensor, kh: int, kw: int) -> Tensor:
    """``x, g (B, C, H, W)`` -> ``df (B, kh*kw, H, W)``."""
    x, g = x.contiguous(), g.contiguous()
    B, C, H, W = x.shape
    df = torch.empty((B, kh * kw, H, W), dtype=x.dtype)
    _run("dlf_grad_filters", x.dtype, x, g, df, C, H, W, kh, kw, B)
    return df
