"""Build a C source file into a shared library on first use, cached per machine, loaded with ctypes.

Infrastructure for :mod:`dfn.ops.cpu_kernel` (no op lives here). The library is compiled with the
system C compiler (``$CC``, else ``cc``) into ``$DFN_CACHE_DIR/kernels`` (default
``~/.cache/dfn/kernels``), under a name keyed by the source, the compiler, the flags and the
processor, so a cache shared by several machines stays valid. Each set of flags is tried in turn;
when none works (or there is no compiler) the caller gets ``None`` and one warning.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Optional, Sequence

from dfn.atomic import written_whole


def cache_dir() -> Path:
    """Where built libraries live: ``$DFN_CACHE_DIR/kernels``, else ``~/.cache/dfn/kernels``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dfn"
    return Path(os.environ.get("DFN_CACHE_DIR", default)) / "kernels"


def _processor_id() -> str:
    """The CPU model and feature flags (a ``-march=native`` build runs only on its own kind)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "".join(next((line for line in lines if line.startswith(key)), "")
                       for key in ("model name", "flags"))
    except OSError:
        return platform.processor() + platform.machine()


def _compile(compiler: str, flags: Sequence[str], source: Path, target: Path) -> None:
    """Compile into a temporary file next to ``target``, then rename it (atomic)."""
    with written_whole(target, suffix=".so") as tmp:
        subprocess.run([compiler, *flags, "-o", str(tmp), str(source)], check=True,
                       capture_output=True, text=True, timeout=120)


def build(source: Path, flag_sets: Sequence[Sequence[str]], what: str) -> Optional[ctypes.CDLL]:
    """``source`` compiled with the first of ``flag_sets`` that works and loaded, or ``None`` with
    one warning (``what`` names the fallback the user gets, e.g. "the pure-PyTorch path")."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        warnings.warn(f"dfn: no C compiler found ($CC or cc) to build {source.name}; using {what}. "
                      "Install gcc or clang for the fused CPU kernel.")
        return None
    errors = []
    for flags in flag_sets:
        key = hashlib.sha256("\0".join([source.read_text(), compiler, *flags, _processor_id()])
                             .encode()).hexdigest()[:16]
        target = cache_dir() / f"{source.stem}-{key}.so"
        try:
            if not target.exists():
                _compile(compiler, flags, source, target)
            return ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as error:
            errors.append(f"{' '.join(flags)}: {getattr(error, 'stderr', None) or error}")
    warnings.warn(f"dfn: could not build {source.name}, using {what}:\n" + "\n".join(errors))
    return None
