"""Writes into the Claude folder: temporaries beside their targets, trash, conflict copies.

Claude Code may write to a file while a pull writes it (it appends to transcripts and to
history.jsonl). Every byte that was in a synced file at any moment of a pull ends in that
file or in trash/:

- A file whose content is a byte-prefix of the new one is extended in place: only the
  missing bytes are appended to the live file, so whatever else is appended lands too.
- Any other replacement holds the current file open, checks it against what the scan saw,
  swaps the fully written temporary with it in one step (renameat2 RENAME_EXCHANGE; a plain
  rename over it where the system has no such call), then checks the held file again:
  bytes written to it meanwhile are in the old file, which is kept in trash/ and reported;
  a file someone renamed over it just before the swap is what comes out, and is kept too.
- A deletion does the same, moving the file aside by a rename before it is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import functools
import hashlib
import os
import re
import shutil
import signal
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .files import private_folder
from .pathmap import temporary_name
from .scan import READ_CHUNK, LocalFile, hash_file, prefix_sha256, read_prefix

MAX_NAME_BYTES = 240  # below the usual 255, leaving room for a -N suffix
LAST_NAMEABLE_SECOND = 253402300799  # 9999-12-31 23:59:59 UTC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Beside:
    """A temporary file for `target`, beside it: its path, and the mode it is made with
    (None: a new file's default, 0666 less the umask)."""

    path: Path
    mode: int | None


def place_beside(target: Path, mode: int | None, absent: bool = False) -> Beside:
    """Where a temporary to fill and then rename over `target` goes, and its mode: that of
    the file it replaces (the user's choice here: a private settings.json stays private),
    else `mode`. The file itself, and its folder if missing, are made by `open_beside`.
    `absent`: the caller found no file at `target` (its mode is not looked for; should one
    appear meanwhile, the temporary is not renamed over it: see `write_file`)."""
    if not absent:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(os.stat(target).st_mode)
    return Beside(target.with_name(temporary_name()), mode)


def open_beside(beside: Beside) -> int:
    """Make the temporary `beside` names, with its mode before it holds a byte, so that
    its content is never readable by more than the file it becomes allows; its file
    descriptor, open for writing. Missing folders on the way are made (0700): by the
    processes that decrypt a pull's files, thousands of folders are made in parallel."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    mode = 0o666 if beside.mode is None else 0o600
    try:
        fd = os.open(beside.path, flags, mode)
    except FileNotFoundError:
        private_folder(beside.path.parent)
        fd = os.open(beside.path, flags, mode)
    try:
        if beside.mode is not None:
            os.fchmod(fd, beside.mode)
    except BaseException:
        os.close(fd)
        beside.path.unlink()
        raise
    return fd


def copy_beside(source: Path, target: Path, mtime_ns: int | None, mode: int | None) -> Path:
    """A fsynced copy of `source` in a temporary file beside `target` (see place_beside),
    ready to rename."""
    temporary = _fill_beside(target, mode, mtime_ns, lambda out: _copy_from(source, out))
    assert temporary is not None  # a copy does not fail but by raising
    return temporary


def _fill_beside(
    target: Path, mode: int | None, mtime_ns: int | None, fill: Callable[[BinaryIO], bool]
) -> Path | None:
    """A temporary beside `target` (see place_beside) that `fill` writes, fsynced and ready
    to rename; None (and no temporary) when `fill` says False. It is written through the
    descriptor that created it: a read-only mode is set before the first byte."""
    beside = place_beside(target, mode)
    try:
        with open(open_beside(beside), "wb") as out:
            if not fill(out):
                beside.path.unlink()
                return None
            out.flush()
            os.fsync(out.fileno())
        if mtime_ns is not None:
            os.utime(beside.path, ns=(mtime_ns, mtime_ns))
    except BaseException:
        beside.path.unlink(missing_ok=True)
        raise
    return beside.path


def _copy_from(source: Path, out: BinaryIO) -> bool:
    with open(source, "rb") as reading:
        shutil.copyfileobj(reading, out, 1 << 20)
    return True


TRASH_TIME = "%Y%m%d-%H%M%S"  # trash/<time>/: local time, to the second
_TRASH_FOLDER = re.compile(r"^(\d{8}-\d{6})(-\d+)?$")


def _trash_destination(trash: Path, relative: str) -> Path:
    """trash/<time>/<relative>, or trash/<time>-N/<relative> when that is taken; its folder
    is created."""
    stamp = datetime.datetime.now().strftime(TRASH_TIME)
    destination = trash / stamp / relative
    number = 1
    while destination.exists() or destination.is_symlink():
        number += 1
        destination = trash / f"{stamp}-{number}" / relative
    private_folder(destination.parent)
    return destination


def keep_in_trash(trash: Path, relative: str, file: Path, move: bool = False) -> Path:
    """Keep `file` as trash/<time>/<relative> (a hard link, or moved: a folder too), never
    over another; returns where it was kept."""
    destination = _trash_destination(trash, relative)
    if move:
        shutil.move(file, destination)  # a rename, or a copy where trash/ is on another disk
        return destination
    try:
        os.link(file, destination)
    except OSError:
        shutil.copy2(file, destination)
    return destination


def empty_trash(trash: Path, keep_days: int) -> int:
    """Remove the trash/<time>/ folders older than `keep_days`, judged by their names alone
    (no file below them is looked at, so this costs one listing of trash/); anything else
    there is left alone. Returns how many folders were removed."""
    cutoff = datetime.datetime.now() - datetime.timedelta(days=keep_days)
    try:
        entries = list(os.scandir(trash))
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        named = _TRASH_FOLDER.match(entry.name)
        if named is None or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            made = datetime.datetime.strptime(named[1], TRASH_TIME)
        except ValueError:  # digits that are no time (a month 13)
            continue
        if made < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)  # what stays, the next run tries again
            removed += not os.path.lexists(entry.path)
    return removed


def move_folder_into(source: Path, target: Path, trash: Path, relative: str) -> int:
    """Move every file of `source` to the same place under `target`, then remove `source`.
    A file `target` already has stays; the one from `source` is dropped when identical and
    kept in trash/<time>/<relative>/... otherwise. Returns how many files moved."""
    moved = 0
    for folder, _, names in os.walk(source):
        for name in names:
            file = Path(folder) / name
            inside = file.relative_to(source)
            destination = target / inside
            if not destination.exists():
                private_folder(destination.parent)
                os.rename(file, destination)
                moved += 1
            elif destination.is_file() and _same_bytes(file, destination):
                file.unlink()
            else:
                keep_in_trash(trash, f"{relative}/{inside.as_posix()}", file, move=True)
    shutil.rmtree(source, ignore_errors=True)  # only folders are left
    return moved


def _same_bytes(one: Path, other: Path) -> bool:
    if one.stat().st_size != other.stat().st_size:
        return False
    with one.open("rb") as first, other.open("rb") as second:
        while True:
            block, other_block = first.read(1 << 20), second.read(1 << 20)
            if block != other_block:
                return False
            if not block:
                return True


def make_way(claude: Path, local: str, trash: Path, folders: set[str]) -> list[str]:
    """Clear what stands where the file `local` must go, when a file became a folder or a
    folder a file on another device: an empty folder in its place is removed; a file where
    one of its folders must be, or a folder with something in it, is moved to trash/.
    Returns the local paths moved to trash/. `folders`: the local folders seen to be
    folders in this run, looked at once (a pull writes thousands of files into them)."""
    moved: list[str] = []
    parts = local.split("/")
    # Nothing is looked at above the deepest folder of the path seen to be one.
    start = next(
        (depth for depth in range(len(parts) - 1, 0, -1) if "/".join(parts[:depth]) in folders),
        0,
    )
    # Strings, not Paths: a pull asks this for each file it writes.
    current = os.path.join(claude, *parts[:start])
    for depth, part in enumerate(parts[start:], start + 1):
        current = f"{current}/{part}"
        last = depth == len(parts)
        relative = "/".join(parts[:depth])
        if not last and relative in folders:
            continue
        try:
            is_folder = stat.S_ISDIR(os.stat(current).st_mode)  # follows the user's links
        except FileNotFoundError:
            return moved
        if last and is_folder:
            try:
                os.rmdir(current)
                _forget_folders(folders, relative)
                return moved
            except OSError:
                pass
        elif is_folder:
            folders.add(relative)
            continue
        elif last:
            continue
        shutil.move(current, _trash_destination(trash, relative))
        _forget_folders(folders, relative)
        moved.append(relative)
        return moved
    return moved


def _forget_folders(folders: set[str], gone: str) -> None:
    folders.difference_update({f for f in folders if f == gone or f.startswith(gone + "/")})


def _keep_open_file_in_trash(trash: Path, relative: str, fd: int) -> Path:
    """Copy the whole content of the open file `fd` to trash/<time>/<relative>."""
    info = os.fstat(fd)
    destination = _trash_destination(trash, relative)
    with open(destination, "xb") as out:
        offset = 0
        while chunk := os.pread(fd, READ_CHUNK, offset):
            out.write(chunk)
            offset += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(destination, stat.S_IMODE(info.st_mode))
    os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns))
    return destination


# writes that replace, extend or delete a synced file --------------------------------------


@dataclass(frozen=True)
class Written:
    """What a write into the Claude folder did.

    applied: the new content went in (False: the file had changed since the scan, or was
        changing, and was left as it is; nothing was written).
    size, mtime_ns: the file's stat as this write left it, to record with the version; None
        when the file is not exactly the new content (`raced`).
    raced: the file was extended while someone else appended to it: both writes are in the
        file, which therefore is not the new content.
    late: where the bytes someone else wrote to the replaced or deleted file after it was
        checked are kept (the whole old file, in trash/).
    """

    applied: bool
    size: int | None = None
    mtime_ns: int | None = None
    raced: bool = False
    late: Path | None = None


LEFT = Written(False)


def _matches(info: os.stat_result, seen: LocalFile) -> bool:
    return stat.S_ISREG(info.st_mode) and (info.st_size, info.st_mtime_ns) == (
        seen.size,
        seen.mtime_ns,
    )


def _same_file(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def write_file(
    source: Path,
    target: Path,
    seen: LocalFile | None,
    mtime_ns: int | None,
    mode: int | None,
    trash: Path,
    relative: str,
    keep_replaced: bool = True,
    prepared: bool = False,
) -> Written:
    """Make `target` (which the scan saw as `seen`, None: absent) hold the bytes of `source`.

    When `seen` is a byte-prefix of `source`, the missing bytes are appended to the live
    file; otherwise a fsynced temporary (`mtime_ns`, and the target's mode, or `mode` for a
    file it creates: see place_beside) is renamed over it,
    the replaced file kept in trash/<time>/<relative> first when `keep_replaced`. Either way
    nothing is written when the file no longer matches `seen`, and no byte someone else
    writes to the file meanwhile is lost (see `Written`).

    A `prepared` source is already that temporary, beside `target` and on disk (the caller
    synced it): it is renamed over the target as it is, or removed once its missing bytes
    are appended; the caller syncs again after the whole batch of writes."""
    size = source.stat().st_size if seen is not None else 0
    if seen is not None and seen.size <= size and prefix_sha256(source, seen.size) == seen.sha256:
        extended = _extend(source, seen.size, target, seen, size, mtime_ns, sync=not prepared)
        if extended is not None:
            if prepared:
                source.unlink()
            return extended
    if prepared:
        temporary = source
        if mtime_ns is not None:
            os.utime(temporary, ns=(mtime_ns, mtime_ns))
    else:
        temporary = copy_beside(source, target, mtime_ns, mode)
    try:
        written = _replace(temporary, target, seen, trash, relative, keep_replaced)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if not written.applied:  # once applied, the temporary is the file (or gone)
        temporary.unlink(missing_ok=True)
    return written


def extend_file(
    tail: Path, target: Path, seen: LocalFile, mtime_ns: int | None, trash: Path, relative: str
) -> Written:
    """Append the bytes of `tail` to `target`, which the scan saw as `seen` and which must
    still be exactly that (else nothing is written); the caller syncs after the batch.

    A file that cannot be opened for writing (read-only) is replaced instead: its bytes
    and the tail's are copied beside it (the copy has its mode) and renamed over it. The
    file replaced is not kept in trash/, as no byte of it is lost: the copy holds them
    all, and what was written to it meanwhile is kept (see `Written`)."""
    size = seen.size + tail.stat().st_size
    extended = _extend(tail, 0, target, seen, size, mtime_ns, sync=False)
    if extended is not None:
        return extended
    grown = _fill_beside(target, None, mtime_ns, lambda out: _grow(target, seen, tail, out))
    if grown is None:
        return LEFT
    try:
        return _replace(grown, target, seen, trash, relative, keep_replaced=False)
    finally:
        grown.unlink(missing_ok=True)


def _grow(target: Path, seen: LocalFile, tail: Path, out: BinaryIO) -> bool:
    """Write `target`'s bytes, then `tail`'s, to `out`; False when `target` is gone or its
    bytes are no longer those the scan saw (`seen`)."""
    prefix = hashlib.sha256()
    try:
        fd = os.open(target, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return False
    with open(fd, "rb") as local:
        if not read_prefix(local, seen.size, prefix.update, out.write) or local.read(1):
            return False
    if prefix.hexdigest() != seen.sha256:
        return False
    return _copy_from(tail, out)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until a write into the Claude folder is complete, so
    an interrupted run never leaves a half-appended tail or an unchecked replacement."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _whole_lines(reading: BinaryIO) -> Iterator[bytes]:
    """The rest of `reading` in chunks of about READ_CHUNK that end at a line's end, so that
    a line Claude Code appends between two writes lands between whole lines."""
    pending = b""
    while chunk := reading.read(READ_CHUNK):
        pending += chunk
        cut = pending.rfind(b"\n") + 1
        if not cut and len(pending) >= 16 * READ_CHUNK:  # not lines: bound the memory
            cut = len(pending)
        if cut:
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending


def _extend(
    source: Path,
    start: int,
    target: Path,
    seen: LocalFile,
    size: int,
    mtime_ns: int | None,
    sync: bool,
) -> Written | None:
    """Append source[start:] to the live target, making it `size` bytes; None when it
    cannot be opened for writing (a read-only file: the caller replaces it instead)."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
    except PermissionError:
        return None
    except OSError:  # gone, a folder, a symbolic link: not what the scan saw
        return LEFT
    try:
        if not _matches(os.fstat(fd), seen):
            return LEFT
        with open(source, "rb") as reading, signals_held():
            reading.seek(start)
            _append(fd, reading, seen.size)
        if sync:
            os.fsync(fd)
        if mtime_ns is not None:
            os.utime(fd if os.utime in os.supports_fd else target, ns=(mtime_ns, mtime_ns))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if after.st_size != size:
        return Written(True, raced=True)
    return Written(True, after.st_size, after.st_mtime_ns)


def _append(fd: int, reading: BinaryIO, start: int) -> None:
    """Append the rest of `reading` to `fd`, which held `start` bytes. When a write fails (a
    full disk), what this call appended is cut off again unless someone appended after it,
    so the file never ends in half a line of ours."""
    appended = 0
    try:
        for chunk in _whole_lines(reading):
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                appended += written
                view = view[written:]
    except OSError:
        if os.fstat(fd).st_size == start + appended:
            os.ftruncate(fd, start)
        raise


def _replace(
    temporary: Path,
    target: Path,
    seen: LocalFile | None,
    trash: Path,
    relative: str,
    keep_replaced: bool,
) -> Written:
    """Rename `temporary` over `target` if it still is what the scan saw (see write_file)."""
    written = os.stat(temporary)
    if seen is None:  # only the rename, which never replaces a file, says if one came
        return _create(temporary, target, seen, written)
    try:
        result = _take_out(
            target, seen, trash, relative, keep_replaced, lambda: _swap_in(temporary, target)
        )
    except FileNotFoundError:
        return _create(temporary, target, seen, written)
    if not result.applied:
        return result
    return dataclasses.replace(result, size=written.st_size, mtime_ns=written.st_mtime_ns)


def _take_out(
    target: Path,
    seen: LocalFile | None,
    trash: Path,
    relative: str,
    keep: bool,
    remove: Callable[[], Path | None],
) -> Written:
    """Hold `target` open; if it still is what the scan saw, keep it in trash/ (when `keep`)
    and `remove` it from the folder; then keep what was written to the held file meanwhile.
    FileNotFoundError when there is no file.

    `remove` moves whatever is at `target` at that instant to the path it returns (None
    where the system cannot say): when that is not the held file, someone replaced the file
    just before, and theirs goes to trash/ instead of being lost."""
    try:
        fd = os.open(target, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError:
        return LEFT
    try:
        held = os.fstat(fd)
        if seen is None or not _matches(held, seen):
            return LEFT
        kept = keep_in_trash(trash, relative, target) if keep else None
        if not _same_file(os.stat(target, follow_symlinks=False), held):
            return LEFT  # replaced by someone else since it was opened
        with signals_held():
            out = remove()
            swapped = None
            if out is not None and _same_file(os.stat(out, follow_symlinks=False), held):
                os.unlink(out)
            elif out is not None:
                swapped = _keep_swapped_out(trash, relative, out)
            late = _late_bytes(fd, held, kept, trash, relative)
        return Written(True, late=swapped or late)
    finally:
        os.close(fd)


def _keep_swapped_out(trash: Path, relative: str, out: Path) -> Path:
    """Keep the file someone put at the target just before it was taken out, now at `out`
    (a temporary's name, which the caller would remove), in trash/; where trash/ cannot
    take it (a full disk), it stays at `out`. Returns where it is."""
    try:
        return keep_in_trash(trash, relative, out, move=True)
    except OSError:
        return out


def _swap_in(temporary: Path, target: Path) -> Path | None:
    """Put `temporary` at `target`; where the system can swap the two in one step, what
    was at `target` is then at `temporary` (returned), else it is gone (None)."""
    if _exchange(temporary, target):
        return temporary
    os.replace(temporary, target)
    return None


def _move_aside(target: Path) -> Path:
    """Move what is at `target` to a temporary name beside it, and return that name."""
    aside = target.with_name(temporary_name())
    os.rename(target, aside)
    return aside


RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCHANGE = 2
AT_FDCWD = -100


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    import ctypes  # writing a file only: kept off the start-up path

    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a C library without it
        return None


def _exchange(one: Path, other: Path) -> bool:
    """Swap two paths atomically; False where the system or the file system cannot."""
    return _rename2(one, other, RENAME_EXCHANGE)


def _rename2(one: Path, other: Path, flags: int) -> bool:
    """Linux's renameat2 of `one` to `other` with `flags`; False where the system or the
    file system cannot, OSError (FileExistsError, ...) where it refuses."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(one), AT_FDCWD, os.fsencode(other), flags) == 0:
        return True
    import ctypes  # _renameat2 imported it

    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(other))


def _create(
    temporary: Path, target: Path, seen: LocalFile | None, written: os.stat_result
) -> Written:
    """Put `temporary` at `target`, which the scan saw absent, unless someone created it."""
    if seen is not None:
        return LEFT
    try:
        _rename_no_replace(temporary, target)  # never over a file created meanwhile
    except FileExistsError:
        return LEFT
    return Written(True, written.st_size, written.st_mtime_ns)


def _rename_no_replace(source: Path, target: Path) -> None:
    """Rename `source` to `target` unless something is there (FileExistsError): in one step
    where renameat2 can, else by a hard link (then `source` is removed), else, on a file
    system without hard links, by a rename if nothing is there just before."""
    if _rename2(source, target, RENAME_NOREPLACE):
        return
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(source, target)
    else:
        os.unlink(source)


def _late_bytes(
    fd: int, held: os.stat_result, kept: Path | None, trash: Path, relative: str
) -> Path | None:
    """After the file open as `fd` (`held` when checked) left the Claude folder: where what
    was written to it since is kept, or None when nothing was."""
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) == (held.st_size, held.st_mtime_ns):
        return None
    if kept is not None:
        with contextlib.suppress(OSError):
            if _same_file(os.stat(kept, follow_symlinks=False), after):
                return kept  # a hard link of this very file: its late bytes are there
    return _keep_open_file_in_trash(trash, relative, fd)


def delete_file(target: Path, seen: LocalFile | None, trash: Path, relative: str) -> Written:
    """Move `target` to trash/<time>/<relative> if it still is what the scan saw; bytes
    written to it meanwhile are kept there too (see `Written`)."""
    try:
        return _take_out(target, seen, trash, relative, True, lambda: _move_aside(target))
    except FileNotFoundError:
        return Written(True) if seen is None else LEFT


def conflict_name(local_path: str, when_ns: int, device_name: str) -> str:
    """<name>.conflict-<YYYYMMDD-HHMMSS>-<device>, beside the original. The extension stays
    inside the name, so Claude Code never loads a copy as a command, agent or skill."""
    folder, _, name = local_path.rpartition("/")
    # An mtime past the year 9999 (tmpfs allows one) or before 1970 names no date: clamp it.
    seconds = min(max(when_ns // 10**9, 0), LAST_NAMEABLE_SECOND)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    device = re.sub(r"[^A-Za-z0-9_-]", "-", device_name)[:32] or "device"
    tail = f".conflict-{when:%Y%m%d-%H%M%S}-{device}"
    room = MAX_NAME_BYTES - len(tail.encode())
    name = name.encode()[: max(room, 1)].decode(errors="ignore") or "file"
    copy = name + tail
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
