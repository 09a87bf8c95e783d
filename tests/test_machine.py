"""accel.machine: the CPUs and memory a process really has, from fake cgroup trees."""

from __future__ import annotations

import os

import pytest

from accel.machine import usable_cpus, usable_memory_bytes


def _affinity() -> int:
    return len(os.sched_getaffinity(0))


def _tree(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


@pytest.mark.parametrize(("files", "quota"), [
    ({"cpu.max": "100000 100000"}, 1),
    ({"cpu.max": "150000 100000"}, 2),                  # 1.5 CPUs keep two jobs busy
    ({"cpu.max": "max 100000"}, None),
    ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1),
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
    ({"cpu.max": "garbage"}, None),
    ({}, None),
])
def test_cpus_are_the_affinity_capped_by_the_quota(tmp_path, files, quota):
    root = _tree(tmp_path, files)
    expected = _affinity() if quota is None else min(_affinity(), quota)
    assert usable_cpus(root) == expected


def test_memory_is_the_smaller_of_the_cgroup_limit_and_the_physical_memory(tmp_path):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert usable_memory_bytes(_tree(tmp_path / "none", {})) == physical
    assert usable_memory_bytes(_tree(tmp_path / "v2", {"memory.max": "max"})) == physical
    assert usable_memory_bytes(_tree(tmp_path / "v2l", {"memory.max": "1048576"})) == 1048576
    v1 = _tree(tmp_path / "v1", {"memory/memory.limit_in_bytes": "2097152"})
    assert usable_memory_bytes(v1) == 2097152
    huge = _tree(tmp_path / "v1h", {"memory/memory.limit_in_bytes": str(2**63 - 4096)})
    assert usable_memory_bytes(huge) == physical
