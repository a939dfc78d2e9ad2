"""Atomic file writes (a file is replaced only by a rename of a fully written one), and
the free-space checks that come before big writes."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import ClaudeSyncError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_private(path: Path, text: str | bytes, mode: int = 0o600) -> None:
    """Write a file (mode 0600 unless told) in a 0700 folder, replacing any old one
    atomically."""
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
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


def rename_into(file: Path, target: Path) -> None:
    """Rename `file` to `target`, making target's missing folders (0700) first if need be."""
    try:
        os.replace(file, target)
    except FileNotFoundError:
        if not file.exists():
            raise
        private_folder(target.parent)
        os.replace(file, target)


def size_text(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_free_space(needs: dict[Path, int], doing: str) -> None:
    """Refuse to start `doing` when a folder's disk has less free space than it needs;
    the needs of folders on one disk add up."""
    by_disk: dict[int, tuple[Path, int]] = {}
    for folder, needed in needs.items():
        disk = _existing(folder).stat().st_dev
        first, total = by_disk.get(disk, (folder, 0))
        by_disk[disk] = (first, total + needed)
    for folder, needed in by_disk.values():
        free = shutil.disk_usage(_existing(folder)).free
        if free < needed:
            raise ClaudeSyncError(
                f"not enough space for the {doing} in {folder}: it needs about "
                f"{size_text(needed)}, {size_text(free)} is free; nothing was changed"
            )


def disk_full(error: OSError, folder: Path, doing: str) -> ClaudeSyncError:
    """The one line for a disk that filled up during `doing`."""
    return ClaudeSyncError(
        f"the disk holding {folder} is full ({error.strerror}): the {doing} stopped, no file "
        "was left half-written; free some space and run it again"
    )
