"""Watching processes through /proc: a process's children, whether one has exited, waiting."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path


def children(pid: int) -> list[int]:
    """The child processes of `pid` (any of its threads may have started them)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the thread ended since it was listed
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def exited(pid: int) -> bool:
    """Whether a process has exited: gone, or a zombie its parent has yet to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Polls `condition` until it holds; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
