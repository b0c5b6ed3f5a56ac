"""How many CPUs this container may really use: its cgroup quota, not the host's core count."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


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


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in cores from cgroup v2 or v1, or None when there is none."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            return parse_cgroup_v2(v2.read_text())
        for v1 in (root / "cpu", root / "cpu,cpuacct", root):
            quota, period = v1 / "cpu.cfs_quota_us", v1 / "cpu.cfs_period_us"
            if quota.is_file() and period.is_file():
                return parse_cgroup_v1(quota.read_text(), period.read_text())
    except (OSError, ValueError):
        return None
    return None


def effective_cpu_count(override: int = 0, root: Path = CGROUP_ROOT) -> int:
    """The override if set, else min(CPUs we may run on, the cgroup quota rounded up), >= 1."""
    if override > 0:
        return override
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        available = min(available or 1, math.ceil(limit))
    return max(1, available or 1)
