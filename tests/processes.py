"""The live processes whose command line holds some words, read from /proc (Linux): how a
test sees that the helper processes it caused have started, or are gone."""

from __future__ import annotations

from pathlib import Path

import pytest

ONLY_WITH_PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                    reason="reads processes from /proc (Linux only)")


def live_processes(*words: str, parent: int | None = None) -> list[int]:
    """Pids of the processes (zombies left out) whose command line has each of `words` as
    one of its arguments, and whose parent is `parent` when it is given."""
    wanted = [word.encode() for word in words]
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # not a process, or gone meanwhile
        if (status[0] != "Z" and (parent is None or int(status[1]) == parent)
                and all(word in command for word in wanted)):
            found.append(int(entry.name))
    return found
