"""Ctrl-C and SIGTERM at the moments no command watches for them: while the command is still
being imported (the contract's exit 130 and one line, never a traceback), and once the command
has decided its exit code (that code, whatever comes)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import cli_env, realistic_rows, write_job_csv

# Sends the signal to its own process when `click` is first imported: the moment lands inside
# the import of the command, every time, which a timer from outside could only hit by chance.
_SIGNAL_DURING_IMPORT = """
import os, sys
from importlib.abc import MetaPathFinder

class Interrupt(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), {signum})
        return None

from bulkops.console import main
sys.meta_path.insert(0, Interrupt())
sys.argv = ["bulkops", "validate", {file!r}]
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_command_is_imported_ends_it_with_130_and_one_line(
    tmp_path: Path, signum: signal.Signals
) -> None:
    job = write_job_csv(tmp_path / "job.csv", realistic_rows(5, tag="early"))
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_DURING_IMPORT.format(signum=int(signum), file=str(job))],
        env=cli_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "interrupted\n"
    assert done.stdout == ""  # stopped before the file was read, let alone found valid


# The command's outcome is decided (`exit_on_signal(3)`); a signal then ends the process at
# once with that code. Once the exit handlers have run, both signals are ignored: the
# interpreter's last steps put Python's own handlers back to the defaults (SIGTERM would kill
# the process, 143), but leave an ignored signal ignored.
_DECIDED = """
import atexit, os, signal, sys, time
from bulkops.console import exit_on_signal

def late() -> None:
    print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
          signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, flush=True)
    os.kill(os.getpid(), signal.{signal})
    time.sleep(0.2)

atexit.register(late)  # registered first, so it runs after the one exit_on_signal adds
exit_on_signal(3)
{then}
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_the_outcome_is_decided_keeps_its_exit_code(
    signum: signal.Signals
) -> None:
    at_once = subprocess.run(
        [sys.executable, "-c", _DECIDED.format(
            signal=signum.name,
            then=f"os.kill(os.getpid(), signal.{signum.name}); time.sleep(30)")],
        env=cli_env(), capture_output=True, text=True, timeout=20,
    )
    assert at_once.returncode == 3, at_once.stderr
    while_exiting = subprocess.run(
        [sys.executable, "-c", _DECIDED.format(signal=signum.name, then="sys.exit(3)")],
        env=cli_env(), capture_output=True, text=True, timeout=20,
    )
    assert (while_exiting.returncode, while_exiting.stderr) == (3, "")
    assert while_exiting.stdout.split() == ["True", "True"]  # ignored from here on
