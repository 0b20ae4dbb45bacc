"""Behaving well on a shared CPU: OpenMP threads that sleep when idle, as many as the process may use.

Two defaults of the OpenMP runtime that torch (and dfn's fused kernel, which shares it) uses make
a training run collapse when other processes want the same cores (a laptop, a shared node):
idle threads spin for a long while (GNU libgomp: 300,000 turns) before they sleep, holding cores
the other process needs, and there is one thread per core of the machine even when the process
may use fewer (an affinity mask, a container's or a cluster job's CPU quota).
``python -m dfn`` calls :func:`spin_briefly` before torch is imported and
:func:`threads_within_quota` after. Each is left alone when the user set it (``OMP_WAIT_POLICY``
or ``GOMP_SPINCOUNT``; ``OMP_NUM_THREADS``).

Measured (``results/shared_cpu.md``): 500 steerable steps alone took as long with 5,000 turns as
with the default; two at once on 2 cores went from 3.4x to 1.8x one alone. ``OMP_WAIT_POLICY=PASSIVE``
(no spinning) was fairer still but made a fit alone 35-50 % slower.
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


SPIN_TURNS = "5000"


def spin_briefly(environ: Optional[dict] = None) -> None:
    """``GOMP_SPINCOUNT=5000`` unless the user chose a wait policy or a spin count: idle OpenMP
    threads go to sleep after a short spin. Call before torch is imported: the OpenMP runtime
    reads it once, when it starts. (GNU libgomp, which torch's Linux builds use.)"""
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_TURNS


def threads_within_quota() -> None:
    """Cap torch's intra-op threads (torch's default: one per physical core of the machine) at
    :func:`usable_cpus`, unless ``OMP_NUM_THREADS`` is set."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(torch.get_num_threads(), usable_cpus()))
