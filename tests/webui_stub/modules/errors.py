"""Stand-in for modules/errors.py (v1.10.1): report() prints and never raises."""

from __future__ import annotations

import sys
import traceback

# stand-in only: every report() lands here too, so tests can assert that a hook error was swallowed
reported: list[tuple[str, BaseException | None]] = []


def report(message: str, *, exc_info: bool = False) -> None:
    """modules/errors.py:report -- print '*** message' (+ traceback) to stderr; the caller continues."""
    exc = sys.exc_info()[1]
    reported.append((message, exc))
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print("    " + traceback.format_exc().replace("\n", "\n    "), file=sys.stderr)
        print("---", file=sys.stderr)


def display(e: Exception, task: str, **kwargs) -> None:
    """modules/errors.py:display -- used by extra_networks/xyz_grid to show an error and go on."""
    report(f"{task or 'error'}: {type(e).__name__}: {e}", exc_info=True)
