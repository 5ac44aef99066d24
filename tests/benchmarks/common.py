"""What every benchmark shares: the sandbox as a subprocess, the installed CLI, timing, figures.

Benchmarks are not tests: nothing here runs under `pytest` (no `test_*` names), and every
figure is printed beside its target or reference rather than asserted.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkops.sandbox import SandboxConfig

SANDBOX_KEY = "sandbox-key"
ACCOUNT_ID = SandboxConfig().account_id
TEMPLATE_ID = "3f0c9a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"


def bulkops_command() -> list[str]:
    """The `bulkops` console script installed beside this interpreter (what a user runs)."""
    beside = Path(sys.executable).parent / "bulkops"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("bulkops")
    return [found] if found else [sys.executable, "-m", "bulkops"]


def cli_env(**extra: str) -> dict[str, str]:
    """This environment without WIX_/BULKOPS_ variables, plus the sandbox's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "BULKOPS_"))}
    env.update(WIX_API_KEY=SANDBOX_KEY, WIX_ACCOUNT_ID=ACCOUNT_ID, **extra)
    return env


def write_creates(path: Path, rows: int) -> Path:
    """A job file of `rows` create_site rows (keys c0000000, ...; names Client 0, ...)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["action", "key", "site_name", "template_id"])
        for number in range(rows):
            writer.writerow(["create_site", f"c{number:07d}", f"Client {number}", TEMPLATE_ID])
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sandbox:
    """A `bulkops sandbox` subprocess."""

    process: subprocess.Popen[bytes]
    base_url: str

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=120) as answer:
            return json.loads(answer.read())

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=json.dumps(body or {}).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def reset(self) -> None:
        self.post("/_sandbox/reset")

    def stats(self) -> Any:
        return self.get("/_sandbox/stats")


@contextmanager
def sandbox(*flags: str) -> Iterator[Sandbox]:
    """A sandbox on a free port for the block's duration, started with `flags`."""
    port = free_port()
    process = subprocess.Popen(
        [*bulkops_command(), "sandbox", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "BULKOPS_"))})
    running = Sandbox(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                running.get("/_sandbox/stats")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.05)
        yield running
    finally:
        process.terminate()
        process.wait(10)


@dataclass(frozen=True)
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # of the command (ru_maxrss of the child)


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None,
            cwd: str | Path | None = None) -> Timed:
    """Run `bulkops ARGS` to its end: wall seconds, output, and its peak RSS in MB."""
    started = time.perf_counter()
    done = subprocess.run([*bulkops_command(), *args], env=dict(env or cli_env()),
                          capture_output=True, text=True, cwd=cwd, check=False)
    seconds = time.perf_counter() - started
    # RUSAGE_CHILDREN is the peak of the largest child so far: run each measured command in
    # its own `run_cli` and read it right away (kB on Linux).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Timed(seconds, done.returncode, done.stdout, done.stderr, peak)


def spread(values: Sequence[float]) -> str:
    """min / median / max of `values`, as printed in the figures."""
    return (f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"
            if max(values) >= 100 else
            f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}")


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bulkops-bench-")


def figure(name: str, value: str, reference: str, ok: bool | None = None) -> str:
    """One printed line: the figure, its reference or target, and whether it meets it."""
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    return f"{name:<44} {value:>26}   {reference}{mark}"


@dataclass(frozen=True)
class Watched:
    """A command that ran to its end, measured on its own (not the largest child so far)."""

    seconds: float
    returncode: int
    peak_rss_mb: float  # ru_maxrss of this one process (kB on Linux)
    cpu_seconds: float = 0.0  # user + system CPU of this one process
    # Of its main thread alone (the event loop's), where /proc tells; last read at most
    # POLL_SECONDS before the process ended.
    main_thread_cpu_seconds: float | None = None


POLL_SECONDS = 0.02


def cpu_seconds(pid: int, thread: int | None = None) -> float | None:
    """User + system CPU seconds of process `pid` (or of its thread `thread`) so far, from
    /proc (None where there is none, or the process has gone). proc(5): fields 14 and 15 of
    stat, in clock ticks."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_alone(args: Sequence[str], env: Mapping[str, str] | None = None,
              stdout: Any = subprocess.DEVNULL, *, watch_main_thread: bool = False) -> Watched:
    """Run `bulkops ARGS` to its end: wall seconds and the peak RSS of that process alone,
    read with wait4 (RUSAGE_CHILDREN would report the largest child measured so far), its CPU;
    with `watch_main_thread`, its main thread's CPU too (polled every POLL_SECONDS, which
    makes the wall seconds up to that much longer)."""
    started = time.perf_counter()
    process = subprocess.Popen([*bulkops_command(), *args], env=dict(env or cli_env()),
                               stdout=stdout, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL)
    main_thread: float | None = None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG if watch_main_thread else 0)
        if pid:
            break
        main_thread = cpu_seconds(process.pid, process.pid) or main_thread
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Watched(seconds, process.returncode, usage.ru_maxrss / 1024,
                   usage.ru_utime + usage.ru_stime, main_thread)
