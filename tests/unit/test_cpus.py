"""CPUs a process may keep busy: its affinity capped by its cgroup's CPU quota, read from
/proc and /sys laid out in a folder as Linux lays them out (cgroup v2, cgroup v1 on the host
and inside a container, controllers mounted together)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bulkops import cpus
from bulkops.cpus import cgroup_cpu_quota, usable_cpus

V2_MOUNT = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n"
V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "33 31 0:30 {root} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
)


def v1_quota(group: str, quota: str) -> dict[str, str]:
    """The cgroup v1 quota files of `group` ("" or "/a/b") under the cpu,cpuacct mount."""
    folder = f"sys/fs/cgroup/cpu,cpuacct{group}"
    return {f"{folder}/cpu.cfs_quota_us": quota, f"{folder}/cpu.cfs_period_us": "100000"}


def lay_out(root: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("150000 100000", 1.5), ("100000 100000", 1.0), ("400000 100000", 4.0),
    ("max 100000", None), ("nonsense", None),
])
def test_cgroup_v2_quota_is_cpu_max_of_the_process_s_group(
    tmp_path: Path, cpu_max: str, expected: float | None
) -> None:
    root = lay_out(tmp_path, "0::/system.slice/nightly.service\n", V2_MOUNT,
                   {"sys/fs/cgroup/system.slice/nightly.service/cpu.max": cpu_max,
                    "sys/fs/cgroup/cpu.max": "max 100000"})
    assert cgroup_cpu_quota(root) == expected


def test_cgroup_v1_quota_on_the_host_hierarchy(tmp_path: Path) -> None:
    root = lay_out(tmp_path, "5:memory:/user.slice\n4:cpu,cpuacct:/user.slice\n",
                   V1_MOUNTS.format(root="/"),
                   v1_quota("/user.slice", "50000"))
    assert cgroup_cpu_quota(root) == 0.5


def test_cgroup_v1_quota_inside_a_container_is_its_mount_s_own(tmp_path: Path) -> None:
    # A container's cpu hierarchy is mounted at its own group: the path in /proc/self/cgroup
    # is the mount's root, and the files are at the mount point itself.
    root = lay_out(tmp_path, "4:cpu,cpuacct:/docker/4f2a\n",
                   V1_MOUNTS.format(root="/docker/4f2a"),
                   v1_quota("", "200000"))
    assert cgroup_cpu_quota(root) == 2.0


def test_no_quota_unreadable_or_absent_is_none(tmp_path: Path) -> None:
    unlimited = lay_out(tmp_path / "a", "4:cpu,cpuacct:/\n", V1_MOUNTS.format(root="/"),
                        v1_quota("", "-1"))
    assert cgroup_cpu_quota(unlimited) is None
    no_files = lay_out(tmp_path / "b", "0::/\n", V2_MOUNT, {})
    assert cgroup_cpu_quota(no_files) is None
    assert cgroup_cpu_quota(tmp_path / "nothing-here") is None  # not Linux


def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    for quota, expected in (("250000 100000", 2), ("50000 100000", 1), ("max 100000", 4),
                            ("800000 100000", 4)):
        root = lay_out(tmp_path / quota.replace(" ", "-"), "0::/\n", V2_MOUNT,
                       {"sys/fs/cgroup/cpu.max": quota})
        assert usable_cpus(root) == expected, quota


def test_an_enclosing_group_s_smaller_quota_counts(tmp_path: Path) -> None:
    # systemd's CPUQuota on a slice, the process in a scope below it: the kernel throttles the
    # slice, so the scope gets no more than the slice's half CPU.
    path = "/user.slice/user-1000.slice/session-3.scope"
    root = lay_out(tmp_path / "slice", f"0::{path}\n", V2_MOUNT,
                   {"sys/fs/cgroup/user.slice/user-1000.slice/cpu.max": "50000 100000",
                    f"sys/fs/cgroup{path}/cpu.max": "max 100000"})
    assert cgroup_cpu_quota(root) == 0.5
    # A child allowed four CPUs inside a parent allowed one: one.
    nested = lay_out(tmp_path / "nested", "0::/parent/child\n", V2_MOUNT,
                     {"sys/fs/cgroup/parent/cpu.max": "100000 100000",
                      "sys/fs/cgroup/parent/child/cpu.max": "400000 100000"})
    assert cgroup_cpu_quota(nested) == 1.0


def test_inside_a_container_the_container_s_own_group_counts_for_its_sub_groups(
    tmp_path: Path
) -> None:
    # cgroup v2 with a namespace (docker-in-docker moves its processes to /init).
    v2 = lay_out(tmp_path / "v2", "0::/init\n", V2_MOUNT,
                 {"sys/fs/cgroup/cpu.max": "100000 100000",
                  "sys/fs/cgroup/init/cpu.max": "max 100000"})
    assert cgroup_cpu_quota(v2) == 1.0
    # cgroup v1, the container's group mounted as the hierarchy's root, the process below it.
    v1 = lay_out(tmp_path / "v1", "4:cpu,cpuacct:/docker/4f2a/app\n",
                 V1_MOUNTS.format(root="/docker/4f2a"),
                 {**v1_quota("", "100000"), **v1_quota("/app", "-1")})
    assert cgroup_cpu_quota(v1) == 1.0


def test_the_mount_that_holds_the_group_is_the_one_read(tmp_path: Path) -> None:
    # Mounted twice: the first mount's root is another group; only the second shows ours.
    twice = ("40 31 0:29 /other /mnt/other rw - cgroup cgroup rw,cpu\n"
             "41 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu\n")
    root = lay_out(tmp_path / "twice", "4:cpu:/jobs\n", twice, v1_quota("/jobs", "100000"))
    assert cgroup_cpu_quota(root) == 1.0
    # A root that is only a prefix of the path's text (/docker/abc, /docker/abcdef) does not
    # hold it.
    prefix = lay_out(tmp_path / "prefix", "4:cpu,cpuacct:/docker/abcdef/x\n",
                     V1_MOUNTS.format(root="/docker/abc"),
                     v1_quota("/def/x", "300000"))
    assert cgroup_cpu_quota(prefix) is None


def test_escaped_and_non_utf8_names_are_read(tmp_path: Path) -> None:
    # mountinfo writes a space in a path as \040; a name may be any bytes but "/".
    spaced = lay_out(tmp_path / "spaced", "0::/\n",
                     "29 23 0:26 / /sys/fs/cgroup\\040v2 rw - cgroup2 cgroup2 rw\n",
                     {"sys/fs/cgroup v2/cpu.max": "200000 100000"})
    assert cgroup_cpu_quota(spaced) == 2.0
    latin = tmp_path / "latin"
    (latin / "proc/self").mkdir(parents=True)
    (latin / "proc/self/cgroup").write_bytes(b"0::/caf\xe9\n")
    (latin / "proc/self/mountinfo").write_bytes(
        b"30 23 0:40 / /mnt/caf\xe9 rw - tmpfs none rw\n" + V2_MOUNT.encode())
    group = latin / "sys/fs/cgroup" / os.fsdecode(b"caf\xe9")
    group.mkdir(parents=True)
    (group / "cpu.max").write_text("100000 100000\n")
    assert cgroup_cpu_quota(latin) == 1.0
