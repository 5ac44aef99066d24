"""The `bulkops` console script: ready for Ctrl-C and SIGTERM before the command is imported.

Importing the command (click, anyio and the project's modules) takes about 0.2 s. A signal in
that time, or in any command that does not watch signals itself (`validate`, `report`), must
still end with the contract's exit 130 and one line, never a traceback or SIGTERM's bare 143.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130  # the contract's code for SIGINT and SIGTERM


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C: the command's clean-up runs (helper processes ended, a transaction
    rolled back) and click turns it into exit 130. Commands that run work on an event loop
    (`run`, `resume`, `worker`) replace this with their own clean stop while they run."""
    raise KeyboardInterrupt


def main() -> None:
    """Run the `bulkops` command; exits with its code (0, 1, 2, 3, 4 or 130)."""
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        from bulkops.cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    command()
