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
import re
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
    period): the smallest of its own group's and every enclosing group's, since the kernel
    throttles a group at each level above it too. None when there is none or it cannot be
    read (not Linux, no cgroup mounted, text that is not what the kernel writes)."""
    try:
        memberships = _lines(root / "proc/self/cgroup")
        mounts = [mount for line in _lines(root / "proc/self/mountinfo")
                  if (mount := _mount(line)) is not None]
    except OSError:
        return None
    quotas: list[float] = []
    for line in memberships:
        # "ID:CONTROLLERS:PATH": cgroup v2's single hierarchy has ID 0 and no controllers.
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            quotas += _quotas(root, mounts, path, "cgroup2", None, _v2_quota)
        elif "cpu" in controllers.split(","):
            quotas += _quotas(root, mounts, path, "cgroup", "cpu", _v1_quota)
    return min(quotas) if quotas else None


def _lines(file: Path) -> list[str]:
    # Names are bytes to the kernel: one that is not UTF-8 stays as it is (surrogateescape),
    # and a path made of it names the same file.
    return file.read_bytes().decode("utf-8", "surrogateescape").splitlines()


def _mount(line: str) -> tuple[str, str, str, set[str]] | None:
    """(root, mount point, file system type, super options) of a mountinfo line: "ID PARENT
    MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS" (proc(5)),
    its paths with their octal escapes (a space is \\040) undone. None for another shape."""
    mine, separator, theirs = line.partition(" - ")
    own, other = mine.split(), theirs.split()
    if not separator or len(own) < 5 or len(other) < 3:
        return None
    return _unescaped(own[3]), _unescaped(own[4]), other[0], set(other[2].split(","))


def _unescaped(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), text)


def _quotas(root: Path, mounts: list[tuple[str, str, str, set[str]]], path: str, kind: str,
            controller: str | None, quota_of: Callable[[Path], float | None]) -> list[float]:
    """The quotas of group `path` and of the groups enclosing it, up to the mount that shows
    it: of the mounts of file system `kind` (with `controller` among their options), the one
    whose root holds `path` most closely (a hierarchy may be mounted more than once)."""
    shown = [(mount_root, point) for mount_root, point, fstype, options in mounts
             if fstype == kind and (controller is None or controller in options)
             and _holds(mount_root, path)]
    if not shown:
        return []
    mount_root, point = max(shown, key=lambda mount: len(mount[0]))
    # Inside a cgroup namespace (a container) the path is given from the mount's root.
    relative = path[len(mount_root):] if mount_root != "/" else path
    parts = [part for part in relative.split("/") if part]
    folder = root / point.lstrip("/")
    found = []
    for depth in range(len(parts), -1, -1):
        quota = quota_of(folder.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _holds(mount_root: str, path: str) -> bool:
    return mount_root == "/" or path == mount_root or path.startswith(mount_root + "/")


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if text is None:
        return None
    quota, _, period = text.partition(" ")  # "max 100000" (no quota) or "150000 100000"
    return _ratio(quota, period)


def _v1_quota(folder: Path) -> float | None:
    return _ratio(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _read(file: Path) -> str | None:
    try:
        return file.read_bytes().decode("ascii", "replace").strip()
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
