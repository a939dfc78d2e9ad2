"""Atomic file writes: a file is replaced only by a rename of a fully written one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str | bytes, mode: int = 0o600) -> None:
    """Write a file (mode 0600 unless told) in a 0700 folder, replacing any old one
    atomically."""
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode != 0o600:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def private_folder(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
