"""How many CPUs this process may keep busy: the CPUs its affinity allows, and no more than its
control group's CPU quota (a container started with `docker run --cpus 1`, a Kubernetes CPU
limit, a systemd unit's CPUQuota).

A quota does not show in the affinity: a container limited to one CPU on an eight-CPU host
sees eight. Work spread over more processes than the quota allows only takes turns on it
(measured for the row-check helpers: 24% slower on one CPU than the pass alone).

The quota is read as the Linux kernel's cgroup documentation gives it
(https://docs.kernel.org/admin-guide/cgroup-v2.html, "cpu.max"; for cgroup v1,
Documentation/scheduler/sched-bwc.rst, "cpu.cfs_quota_us" and "cpu.cfs_period_us"): the
process's cgroup is found in /proc/self/cgroup, where its hierarchy is mounted in
/proc/self/mountinfo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path


def usable_cpus(root: Path = Path("/")) -> int:
    """CPUs this process may keep busy: its affinity's count, capped by its cgroup's CPU quota
    rounded down (at least 1). `root`: where /proc and /sys are (tests give a folder)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        usable = min(usable or 1, max(1, math.floor(quota)))
    return max(1, usable or 1)


def cgroup_cpu_quota(root: Path = Path("/")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (1.5: one and a half CPUs' time per
    period), or None when it has none or it cannot be read (not Linux, no cgroup mounted)."""
    try:
        memberships = (root / "proc/self/cgroup").read_text().splitlines()
        mounts = (root / "proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in memberships:
        # "ID:CONTROLLERS:PATH": cgroup v2's single hierarchy has ID 0 and no controllers.
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            quota = _v2_quota(root, mounts, path)
        elif "cpu" in controllers.split(","):
            quota = _v1_quota(root, mounts, path)
        else:
            continue
        if quota is not None:
            return quota
    return None


def _v2_quota(root: Path, mounts: list[str], path: str) -> float | None:
    folder = _folder(root, mounts, path, lambda kind, options: kind == "cgroup2")
    text = _read(folder / "cpu.max") if folder is not None else None
    if text is None:
        return None
    quota, _, period = text.partition(" ")  # "max 100000" (no quota) or "150000 100000"
    return _ratio(quota, period)


def _v1_quota(root: Path, mounts: list[str], path: str) -> float | None:
    folder = _folder(root, mounts, path,
                     lambda kind, options: kind == "cgroup" and "cpu" in options.split(","))
    if folder is None:
        return None
    return _ratio(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _folder(root: Path, mounts: list[str], path: str,
            wanted: Callable[[str, str], bool]) -> Path | None:
    """The folder of cgroup `path` under the first mount `wanted(fstype, options)` accepts.
    A mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS ... - FSTYPE SOURCE
    SUPER_OPTIONS" (proc(5))."""
    for line in mounts:
        mine, _, theirs = line.partition(" - ")
        own, other = mine.split(), theirs.split()
        if len(own) < 5 or len(other) < 3 or not wanted(other[0], other[2]):
            continue
        mount_root, mount_point = own[3], own[4]
        # Inside a cgroup namespace (a container) the path is relative to the mount's root.
        relative = path[len(mount_root):] if path.startswith(mount_root) else path
        return root / mount_point.lstrip("/") / relative.lstrip("/")
    return None


def _read(file: Path) -> str | None:
    try:
        return file.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str | None, period: str | None) -> float | None:
    """quota / period, None for no quota ("max", -1) or text that is not a number."""
    try:
        spent, every = int(quota or ""), int(period or "")
    except ValueError:
        return None
    if spent <= 0 or every <= 0:
        return None
    return spent / every
