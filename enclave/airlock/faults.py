"""Named crash points, so tests can kill a real process at a precise step and check the recovery.

Disarmed (the default) a crash point costs one dict lookup. A test's subprocess arms a point
with ``arm(name, ready_file)``: on reaching it the process writes ``ready_file`` and waits to be
killed by the test (SIGKILL), which is what a power cut or an OOM kill looks like on disk.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

_armed: dict[str, Path] = {}


def arm(name: str, ready_file: Path) -> None:
    """Make the process stop at crash point ``name`` and announce it through ``ready_file``."""
    _armed[name] = Path(ready_file)


def crash_point(name: str) -> None:
    """Stop here (announce, then wait for the kill) when this point is armed; otherwise do nothing."""
    ready = _armed.get(name)
    if ready is None:
        return
    ready.write_text(str(os.getpid()))
    while True:  # the test kills us; never return into a half-finished step
        time.sleep(60)
