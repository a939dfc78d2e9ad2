"""Writes into the Claude folder: temporaries beside their targets, trash, conflict copies."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
from pathlib import Path

from .files import private_folder
from .pathmap import temporary_name
from .scan import hash_file

MAX_NAME_BYTES = 240  # below the usual 255, leaving room for a -N suffix


def copy_beside(source: Path, target: Path, mtime_ns: int | None) -> Path:
    """A fsynced copy of `source` in a temporary file beside `target`, ready to rename.

    It takes the mode of the file it replaces (a private settings.json stays private)."""
    private_folder(target.parent)
    temporary = target.with_name(temporary_name())
    try:
        with open(source, "rb") as reading, open(temporary, "wb") as out:
            shutil.copyfileobj(reading, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            shutil.copymode(target, temporary, follow_symlinks=False)
        if mtime_ns is not None:
            os.utime(temporary, ns=(mtime_ns, mtime_ns))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def keep_in_trash(trash: Path, relative: str, file: Path, move: bool = False) -> None:
    """Keep `file` as trash/<time>/<relative> (a hard link, or moved), never over another."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    destination = trash / stamp / relative
    number = 1
    while destination.exists() or destination.is_symlink():
        number += 1
        destination = trash / f"{stamp}-{number}" / relative
    private_folder(destination.parent)
    if move:
        os.replace(file, destination)
        return
    try:
        os.link(file, destination)
    except OSError:
        shutil.copy2(file, destination)


def conflict_name(local_path: str, when_ns: int, device_name: str) -> str:
    """<name>.conflict-<YYYYMMDD-HHMMSS>-<device>.<ext>, beside the original."""
    folder, _, name = local_path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    when = datetime.datetime.fromtimestamp(when_ns / 1e9, datetime.timezone.utc)
    device = re.sub(r"[^A-Za-z0-9_-]", "-", device_name)[:32] or "device"
    tail = f".conflict-{when:%Y%m%d-%H%M%S}-{device}{dot}{extension}"
    room = MAX_NAME_BYTES - len(tail.encode())
    stem = stem.encode()[: max(room, 1)].decode(errors="ignore") or "file"
    copy = stem + tail
    return f"{folder}/{copy}" if folder else copy


def free_copy_name(copy: Path, source: Path) -> Path | None:
    """`copy`, or `copy` with -2, -3... after the device when another version holds the name
    (two versions from one device in one second); None when the same bytes are already there."""
    stem, dot, extension = copy.name.rpartition(".")
    if extension.startswith("conflict-"):
        stem, dot, extension = copy.name, "", ""
    candidate, number, wanted = copy, 1, hash_file(source)
    while candidate.exists():
        if hash_file(candidate) == wanted:
            return None
        number += 1
        candidate = copy.with_name(f"{stem}-{number}{dot}{extension}")
    return candidate


def merge_history(files: list[Path]) -> bytes:
    """The union of lines of every version, ordered by their `timestamp`, then as text."""
    lines: dict[bytes, tuple[float, bytes]] = {}
    for file in files:
        for line in file.read_bytes().splitlines():
            if not line.strip() or line in lines:
                continue
            try:
                stamp = float(json.loads(line).get("timestamp", 0))
            except (ValueError, AttributeError, TypeError):
                stamp = 0.0
            lines[line] = (stamp, line)
    ordered = sorted(lines.values())
    return b"".join(line + b"\n" for _, line in ordered)
