"""What this process may really use of the machine: CPUs and memory.

``os.cpu_count()``, ``multiprocessing.cpu_count()`` and ``psutil.cpu_count()`` report the
host's processors, and ``psutil.virtual_memory()`` its memory. In a container or a CI job
that owns a share of a large host (a CPU affinity mask, a cgroup CPU quota, a cgroup memory
limit), those figures are many times what the process gets; a tool that sizes its parallelism
from them (pytest-xdist's ``-n auto``, cocotb's ``make -j`` for Verilator) oversubscribes the
machine until every job is slower than running them one at a time. These functions read the
limits that apply: the affinity mask, the cgroup v2 ``cpu.max`` / ``memory.max`` or the
cgroup v1 CFS quota / ``memory.limit_in_bytes``, and the physical memory.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroups(proc_cgroup: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """This process's cgroup path per controller ("" for the v2 hierarchy), from
    ``/proc/self/cgroup``; empty when it cannot be read."""
    paths = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        for controller in controllers.split(","):
            paths[controller] = path.lstrip("/")
    return paths


def _places(root: Path, controller: str, own: dict[str, str]) -> list[Path]:
    """Where a controller's files may be: this process's own cgroup below the mount (a
    host's view), then the mount's root (a container's namespaced view)."""
    base = root / controller if controller else root
    path = own.get(controller, "")
    return [base / path, base] if path else [base]


def _cgroup_cpu_quota(root: Path, own: dict[str, str]) -> float | None:
    """CPUs the cgroup quota allows (a fraction is possible), or None without a quota."""
    for place in _places(root, "", own):
        v2 = _read(place / "cpu.max")  # "max 100000" or "200000 100000"
        if v2:
            quota, _, period = v2.partition(" ")
            if quota.isdigit() and period.isdigit() and int(period) > 0:
                return int(quota) / int(period)
            return None
    for place in _places(root, "cpu", own):
        quota, period = _read(place / "cpu.cfs_quota_us"), _read(place / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and period.isdigit():
            if int(quota) > 0 and int(period) > 0:
                return int(quota) / int(period)
            return None
    return None


def usable_cpus(root: Path = _CGROUP, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Processors this process may run on at once: the affinity mask, capped by the cgroup
    CPU quota (rounded up: 1.5 CPUs of quota keep two jobs busy); at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota(root, _own_cgroups(proc_cgroup))
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def usable_memory_bytes(root: Path = _CGROUP,
                        proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Memory this process's cgroup may use: the smaller of the cgroup limit and the physical
    memory; None when neither can be read."""
    own = _own_cgroups(proc_cgroup)
    limits = []
    files = [place / "memory.max" for place in _places(root, "", own)]
    files += [place / "memory.limit_in_bytes" for place in _places(root, "memory", own)]
    for path in files:
        text = _read(path)
        if text and text.isdigit():
            limits.append(int(text))
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    return min(limits) if limits else None
