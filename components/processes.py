"""Processes of this machine: whether the holder of a lock or a run is still alive."""

from __future__ import annotations

import os
import socket


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (one of another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_here(host: str, pid: int) -> bool:
    """A process of this machine that no longer runs (one of another machine: not known, so False)."""
    return host == this_host() and not process_alive(pid)
