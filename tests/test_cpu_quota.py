"""CPU quota parsing (issue 6): thread pools follow the container's cgroup quota, not the host.

Fake cgroup v1/v2 trees in temporary directories stand in for /sys/fs/cgroup, and a fake file
for /proc/self/cgroup.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_server.logo_detection import cpu_quota
from model_server.logo_detection.cpu_quota import parse_cgroup_v1, parse_cgroup_v2

HOST_CPUS = len(os.sched_getaffinity(0))
NAMESPACED = "0::/\n"  # /proc/self/cgroup inside a container with its own cgroup namespace


@pytest.fixture
def proc(tmp_path_factory):
    """Write a fake /proc/self/cgroup; returns its path."""

    def write(content: str = NAMESPACED) -> Path:
        path = tmp_path_factory.mktemp("proc") / "cgroup"
        path.write_text(content)
        return path

    return write


def cgroup_cpu_limit(root: Path, self_cgroup: Path | None = None) -> float | None:
    if self_cgroup is None:
        self_cgroup = root / "no-such-proc-file"  # unreadable: the mount's own quota counts
    return cpu_quota.cgroup_cpu_limit(root, self_cgroup)


def effective_cpu_count(override: int = 0, root: Path = Path("/"), self_cgroup=None) -> int:
    return cpu_quota.effective_cpu_count(override, root, self_cgroup or root / "no-such-file")


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    (root / "cpu.max").write_text(cpu_max)
    return root


def cgroup_v1(root: Path, quota_us: str, period_us: str, controller: str = "cpu,cpuacct") -> Path:
    directory = root / controller
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpu.cfs_quota_us").write_text(quota_us)
    (directory / "cpu.cfs_period_us").write_text(period_us)
    return root


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("200000 100000\n", 2.0),
        ("150000 100000\n", 1.5),
        ("50000 100000", 0.5),
        ("max 100000\n", None),
        ("0 100000", None),
        ("100000 0", None),
        ("", None),
    ],
)
def test_parse_cgroup_v2(cpu_max, expected):
    assert parse_cgroup_v2(cpu_max) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("400000\n", "100000\n", 4.0), ("25000", "100000", 0.25), ("-1\n", "100000\n", None)],
)
def test_parse_cgroup_v1(quota, period, expected):
    assert parse_cgroup_v1(quota, period) == expected


def test_v2_quota_is_read(tmp_path):
    assert cgroup_cpu_limit(cgroup_v2(tmp_path, "150000 100000\n")) == 1.5


@pytest.mark.parametrize("controller", ["cpu", "cpu,cpuacct", "."])
def test_v1_quota_is_read_from_any_mount_layout(tmp_path, controller):
    assert cgroup_cpu_limit(cgroup_v1(tmp_path, "300000", "100000", controller)) == 3.0


def test_v2_wins_over_v1_leftovers(tmp_path):
    cgroup_v1(tmp_path, "800000", "100000")
    assert cgroup_cpu_limit(cgroup_v2(tmp_path, "100000 100000")) == 1.0


@pytest.mark.parametrize("cpu_max", ["max 100000", "garbage 100000", "1 2 3"])
def test_unlimited_or_unreadable_quota_means_no_limit(tmp_path, cpu_max):
    assert cgroup_cpu_limit(cgroup_v2(tmp_path, cpu_max)) is None
    assert effective_cpu_count(root=tmp_path) == HOST_CPUS


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "missing") is None
    assert effective_cpu_count(root=tmp_path) == HOST_CPUS


@pytest.mark.parametrize(
    ("cpu_max", "rounded_up"),
    [("150000 100000", 2), ("50000 100000", 1), ("100000 100000", 1), ("110000 100000", 2)],
)
def test_fractional_quota_rounds_up_and_never_exceeds_the_cpus_we_may_run_on(
    tmp_path, cpu_max, rounded_up
):
    assert effective_cpu_count(root=cgroup_v2(tmp_path, cpu_max)) == min(HOST_CPUS, rounded_up)


def test_quota_above_the_host_is_capped_by_cpu_affinity(tmp_path):
    quota = f"{(HOST_CPUS + 8) * 100000} 100000"
    assert effective_cpu_count(root=cgroup_v2(tmp_path, quota)) == HOST_CPUS


def test_v1_fractional_quota(tmp_path):
    assert effective_cpu_count(root=cgroup_v1(tmp_path, "150000", "100000")) == min(HOST_CPUS, 2)


def test_v2_without_a_cgroup_namespace_takes_the_tightest_ancestor(tmp_path, proc):
    """A systemd slice or a host cgroup namespace: the process's own cgroup is deep in the tree,
    and a parent's quota limits it as much as its own."""
    (tmp_path / "cgroup.controllers").write_text("cpu io memory\n")
    own = tmp_path / "kubepods.slice" / "pod1.slice" / "container.scope"
    own.mkdir(parents=True)
    cgroup_v2(own, "max 100000\n")
    cgroup_v2(own.parent, "150000 100000\n")
    cgroup_v2(own.parent.parent, "400000 100000\n")
    self_cgroup = proc("0::/kubepods.slice/pod1.slice/container.scope\n")
    assert cgroup_cpu_limit(tmp_path, self_cgroup) == 1.5
    assert effective_cpu_count(0, tmp_path, self_cgroup) == min(HOST_CPUS, 2)
    assert cgroup_cpu_limit(tmp_path, proc(NAMESPACED)) is None  # the root has no cpu.max


def test_v1_docker_layout_reads_the_mounted_cgroup(tmp_path, proc):
    """Docker on cgroup v1 mounts the container's own cgroup at /sys/fs/cgroup/cpu, while
    /proc/self/cgroup still names its host path, which does not exist below the mount."""
    cgroup_v1(tmp_path, "200000", "100000", controller="cpu")
    self_cgroup = proc("12:cpu,cpuacct:/docker/0123abcd\n11:memory:/docker/0123abcd\n0::/\n")
    assert cgroup_cpu_limit(tmp_path, self_cgroup) == 2.0


def test_v1_host_hierarchy_uses_the_process_cgroup(tmp_path, proc):
    cgroup_v1(tmp_path, "-1", "100000", controller="cpu,cpuacct")
    own = tmp_path / "cpu,cpuacct" / "system.slice" / "app.service"
    own.mkdir(parents=True)
    (own / "cpu.cfs_quota_us").write_text("50000\n")
    (own / "cpu.cfs_period_us").write_text("100000\n")
    self_cgroup = proc("4:cpu,cpuacct:/system.slice/app.service\n1:name=systemd:/\n")
    assert cgroup_cpu_limit(tmp_path, self_cgroup) == 0.5
    assert effective_cpu_count(0, tmp_path, self_cgroup) == 1


def test_a_garbled_proc_file_falls_back_to_the_mounts_own_quota(tmp_path, proc):
    cgroup_v2(tmp_path, "100000 100000")
    assert cgroup_cpu_limit(tmp_path, proc("not a cgroup line\n0:x\n")) == 1.0


def test_override_wins_over_the_quota(tmp_path):
    root = cgroup_v2(tmp_path, "100000 100000")
    assert effective_cpu_count(0, root) == 1
    assert effective_cpu_count(7, root) == 7
