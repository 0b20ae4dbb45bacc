"""Threads and wait policy for a shared CPU (dfn/harness/cpu_share.py)."""
import os

import pytest

from dfn.harness.cpu_share import spin_briefly, usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize("files,expected", [
    ({"cpu.max": "150000 100000\n"}, min(AFFINITY, 2)),            # cgroup v2: 1.5 CPUs -> 2 threads
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "max 100000\n"}, AFFINITY),                         # no quota
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),   # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, AFFINITY),
    ({}, AFFINITY),                                                 # no cgroup files at all
])
def test_usable_cpus_follow_the_affinity_mask_and_the_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert usable_cpus(tmp_path) == expected


@pytest.mark.parametrize("user,expected", [
    ({}, {"GOMP_SPINCOUNT": "5000"}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}),      # the user's choice stays
    ({"GOMP_SPINCOUNT": "100"}, {"GOMP_SPINCOUNT": "100"}),
])
def test_idle_threads_spin_briefly_unless_the_user_chose(user, expected):
    environ = dict(user)
    spin_briefly(environ)
    assert environ == expected
