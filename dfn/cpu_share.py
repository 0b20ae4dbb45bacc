"""Behaving well on a shared CPU: OpenMP threads that sleep when idle, as many as the process may use.

Two defaults of the OpenMP runtime that torch (and dfn's fused kernel, which shares it) uses make
a training run collapse when other processes want the same cores (a laptop, a shared node):
idle threads spin for a while before they sleep, and there is one per core of the machine even
when the process may use fewer (an affinity mask, a container's or a cluster job's CPU quota).
``python -m dfn`` calls :func:`sleep_when_idle` before torch is imported and
:func:`threads_within_quota` after. Each is left alone when the user set it (``OMP_WAIT_POLICY``,
``OMP_NUM_THREADS``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (v2
    ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up, at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup_root)
    return max(1, min(cpus, math.ceil(quota)) if quota is not None else cpus)


def _cgroup_quota(root: Path) -> Optional[float]:
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def sleep_when_idle(environ: Optional[dict] = None) -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set: idle OpenMP threads sleep instead of spinning.
    Call before torch is imported: the OpenMP runtime reads it once, when it starts."""
    (os.environ if environ is None else environ).setdefault("OMP_WAIT_POLICY", "PASSIVE")


def threads_within_quota() -> None:
    """Cap torch's intra-op threads (torch's default: one per physical core of the machine) at
    :func:`usable_cpus`, unless ``OMP_NUM_THREADS`` is set."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(torch.get_num_threads(), usable_cpus()))
