"""One claude-sync run at a time per CLAUDE_SYNC_HOME (two hooks may fire together)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LockedError

WAIT_SECONDS = 15.0
PID_WIDTH = 24  # wider than any pid written, with its newline


@contextmanager
def locked(home: Path, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold home/lock; wait up to `wait` seconds for another run, then raise LockedError."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(home / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        give_up = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise LockedError(
                        f"another claude-sync run (pid {holder}) holds {home / 'lock'}; "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.1)
        # Padded over what an earlier holder wrote, never truncated: truncating a file whose
        # bytes are not yet on disk makes ext4 write them out first, which took 0.3 s.
        os.pwrite(fd, f"{os.getpid()}\n".ljust(PID_WIDTH).encode(), 0)
        yield
    finally:
        os.close(fd)
