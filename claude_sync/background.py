"""Pushes handed to a detached background run, coalesced.

Claude Code kills SessionEnd hooks after about 1.5 s, so `push --hook` only records a
request and starts a runner in a session of its own (it outlives the hook and Claude Code)
and returns. The runner holds `background.lock` while it works and pushes as long as a
request is waiting, taking the request before each push:

    request:  write push-requested; start a runner unless one holds background.lock
    runner:   while we hold background.lock: while push-requested exists: remove it; push
              after releasing the lock: a request that arrived meanwhile -> go round again

A runner that finds the lock held exits at once: the holder sees the request, either in its
loop or in its check after releasing the lock. So requests that arrive while a push runs
are coalesced into exactly one more push, and none is left waiting.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .files import private_folder, write_private

REQUEST = "push-requested"
RUNNER_LOCK = "background.lock"


def request_push(home: Path, why: str) -> None:
    """Ask for a push and make sure a runner will do it; returns at once."""
    write_private(home / REQUEST, why + "\n")
    if _runner_active(home):
        return  # it sees the request, in its loop or in its check after the lock
    # In our own folder: `-m` puts the working folder first on the import path, and a hook
    # runs in the user's project, which may hold a folder named claude_sync.
    subprocess.Popen(
        [sys.executable, "-m", "claude_sync", "background-push"],
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _runner_active(home: Path) -> bool:
    """Whether a runner holds the lock (a runner that could not take it because we looked
    leaves the request to the one we then start)."""
    try:
        fd = os.open(home / RUNNER_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _take_request(home: Path) -> bool:
    try:
        (home / REQUEST).unlink()
        return True
    except FileNotFoundError:
        return False


def run_requested(home: Path, push: Callable[[], None]) -> int:
    """Push once for every batch of requests while this runner holds the lock; returns
    how many pushes ran (0 when another runner holds the lock)."""
    private_folder(home)
    pushes = 0
    while True:
        fd = os.open(home / RUNNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return pushes
            while _take_request(home):
                pushes += 1
                push()
        finally:
            os.close(fd)
        if not (home / REQUEST).exists():
            return pushes
