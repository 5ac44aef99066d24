"""The `bulkops` console script: ready for Ctrl-C and SIGTERM before the command is imported,
and exiting at once with the decided code on one that comes after the command has decided.

Importing the command (click, anyio and the project's modules) takes about 0.2 s. A signal in
that time, or in any command that does not watch signals itself (`validate`, `report`), must
still end with the contract's exit 130 and one line, never a traceback or SIGTERM's bare 143.
Only the interpreter's own start, the first few milliseconds before this module runs, is out
of reach.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130  # the contract's code for SIGINT and SIGTERM


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C: the command's clean-up runs (helper processes ended, a transaction
    rolled back) and click turns it into exit 130. Commands that run work on an event loop
    (`run`, `resume`, `worker`) replace this with their own clean stop while they run
    (`loop.run` puts it back after)."""
    raise KeyboardInterrupt


def exit_on_signal(code: int) -> None:
    """From here on SIGINT and SIGTERM end the process at once with `code`, the exit code the
    command has decided: a second Ctrl-C must not cut its last line short with a traceback,
    nor a late SIGTERM turn it into 143. Not ignored while threads are joined (a shutdown
    that hangs still ends on Ctrl-C); ignored only from the last exit handlers on, when the
    interpreter puts Python's handlers back to the defaults (CPython's _PySignal_Fini; an
    ignored signal stays ignored)."""

    def leave(signum: int, frame: FrameType | None) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken stream: nothing to say
                stream.flush()
        os._exit(code)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)
    atexit.unregister(_ignore_signals)  # once, however often the exit code is decided
    atexit.register(_ignore_signals)  # exit handlers run after threads are joined


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def main() -> None:
    """Run the `bulkops` command; exits with its code (0, 1, 2, 3, 4 or 130)."""
    signal.signal(signal.SIGTERM, _interrupted)  # as SIGINT: KeyboardInterrupt
    try:
        from bulkops.cli import main as command

        command()
    except KeyboardInterrupt:  # while importing, or while the command was already ending
        exit_on_signal(EXIT_INTERRUPTED)
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        exit_on_signal(_exit_code(exc))
        raise
    exit_on_signal(0)


def _exit_code(exc: SystemExit) -> int:
    """The process's exit code for `exc`, as Python computes it (None: 0; a text: 1)."""
    return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
