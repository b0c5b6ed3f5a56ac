"""How many CPUs this container may really use: its cgroup quota, not the host's core count.

Inside a container with its own cgroup namespace, /sys/fs/cgroup is the container's cgroup. Where
it is not (cgroup v1, a host cgroup namespace, a systemd slice), the process's cgroup is read
from /proc/self/cgroup and every ancestor's quota counts: the tightest one wins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
V1_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu", ".")


def parse_cgroup_v2(cpu_max: str) -> float | None:
    """`cpu.max` holds "<quota> <period>" or "max <period>"; None when unlimited."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    quota, period = int(fields[0]), int(fields[1])
    return quota / period if quota > 0 and period > 0 else None


def parse_cgroup_v1(quota_us: str, period_us: str) -> float | None:
    """`cpu.cfs_quota_us` is -1 when unlimited."""
    quota, period = int(quota_us.strip()), int(period_us.strip())
    return quota / period if quota > 0 and period > 0 else None


def own_cgroup_paths(self_cgroup: Path = SELF_CGROUP) -> dict[str, str]:
    """/proc/self/cgroup as {"v2" or a v1 controller: path}; unreadable lines are skipped."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return {}
    paths = {}
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) == 3 and fields[2].startswith("/"):
            for controller in fields[1].split(",") if fields[1] else ["v2"]:
                paths[controller] = fields[2]
    return paths


def _tightest(directory: Path, mount: Path, read: Callable[[Path], float | None]) -> float | None:
    """The smallest quota from `directory` up to `mount`, the cgroup mount point."""
    limits = []
    while True:
        limit = read(directory)
        if limit is not None:
            limits.append(limit)
        if directory == mount or directory == directory.parent:
            return min(limits, default=None)
        directory = directory.parent


def _read_v2(directory: Path) -> float | None:
    cpu_max = directory / "cpu.max"
    return parse_cgroup_v2(cpu_max.read_text()) if cpu_max.is_file() else None


def _read_v1(directory: Path) -> float | None:
    quota, period = directory / "cpu.cfs_quota_us", directory / "cpu.cfs_period_us"
    if quota.is_file() and period.is_file():
        return parse_cgroup_v1(quota.read_text(), period.read_text())
    return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """The CPU quota in cores from cgroup v2 or v1, or None when there is none."""
    try:
        own = own_cgroup_paths(self_cgroup)
        if (root / "cgroup.controllers").is_file() or (root / "cpu.max").is_file():
            return _tightest(root / own.get("v2", "/").lstrip("/"), root, _read_v2)
        for name in V1_MOUNTS:
            mount = root / name
            if (mount / "cpu.cfs_quota_us").is_file():
                # Docker mounts the container's own cgroup here (its path in /proc/self/cgroup
                # then does not exist below it); on a host it is the whole hierarchy.
                return _tightest(mount / own.get("cpu", "/").lstrip("/"), mount, _read_v1)
    except (OSError, ValueError):
        return None
    return None


def effective_cpu_count(
    override: int = 0, root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP
) -> int:
    """The override if set, else min(CPUs we may run on, the cgroup quota rounded up), >= 1."""
    if override > 0:
        return override
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_cpu_limit(root, self_cgroup)
    if limit is not None:
        available = min(available or 1, math.ceil(limit))
    return max(1, available or 1)
