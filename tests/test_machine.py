"""accel.machine: the CPUs and memory a process really has, from fake cgroup trees."""

from __future__ import annotations

import os

import pytest

from accel.machine import usable_cpus
from accel.machine import usable_memory_bytes as _memory


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
    root = _tree(tmp_path / "cg", files)
    expected = _affinity() if quota is None else min(_affinity(), quota)
    assert usable_cpus(root, tmp_path / "no_proc_cgroup") == expected


def test_a_host_view_reads_the_process_own_cgroup(tmp_path):
    # Without a cgroup namespace the mount shows the whole tree: the quota is on the
    # process's own cgroup, named in /proc/self/cgroup, not at the mount's root.
    proc = _tree(tmp_path, {"proc_cgroup": "0::/ci/job7"}) / "proc_cgroup"
    root = _tree(tmp_path / "cg", {"cpu.max": "max 100000", "ci/job7/cpu.max": "100000 100000",
                                   "ci/job7/memory.max": "3145728"})
    assert usable_cpus(root, proc) == 1
    assert _memory(root, proc) == 3145728
    v1 = tmp_path / "v1"
    proc1 = _tree(v1, {"proc_cgroup": "4:cpu,cpuacct:/ci/job7\n3:memory:/ci/job7"}) / "proc_cgroup"
    _tree(v1 / "cg", {"cpu/ci/job7/cpu.cfs_quota_us": "50000",
                      "cpu/ci/job7/cpu.cfs_period_us": "100000",
                      "memory/ci/job7/memory.limit_in_bytes": "4194304"})
    assert usable_cpus(v1 / "cg", proc1) == 1
    assert _memory(v1 / "cg", proc1) == 4194304


def test_memory_is_the_smaller_of_the_cgroup_limit_and_the_physical_memory(tmp_path):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    none = tmp_path / "no_proc_cgroup"

    def usable_memory_bytes(root):
        return _memory(root, none)

    assert usable_memory_bytes(_tree(tmp_path / "none", {})) == physical
    assert usable_memory_bytes(_tree(tmp_path / "v2", {"memory.max": "max"})) == physical
    assert usable_memory_bytes(_tree(tmp_path / "v2l", {"memory.max": "1048576"})) == 1048576
    v1 = _tree(tmp_path / "v1", {"memory/memory.limit_in_bytes": "2097152"})
    assert usable_memory_bytes(v1) == 2097152
    huge = _tree(tmp_path / "v1h", {"memory/memory.limit_in_bytes": str(2**63 - 4096)})
    assert usable_memory_bytes(huge) == physical
