"""Assembling pulled files from downloaded objects, every byte verified, each written once.

A file a pull downloads is decrypted straight into a temporary beside its target (the
name every scan passes over and removes), so that applying it is one rename. A file that
only grew elsewhere gets just its new segments, in staging/, which are then appended to
the live file: its unchanged prefix is read once (to check the whole file's hash) and
never written. Versions a conflict needs (several per path, read more than once) are
assembled in staging/.

Nothing is synced to disk here, file by file: the pull syncs once, after every file is
assembled and before the first rename (see `sync_disks`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import crypto
from .claude_folder import new_beside
from .errors import ClaudeSyncError, DamagedObject, RemoteFormatError
from .remote import object_path
from .scan import read_prefix
from .session import Session
from .versions import Version


@dataclass(frozen=True)
class Needed:
    """A version whose bytes a pull needs; the first `reused` segments are already local.
    `beside`: its bytes go into a temporary beside the path's file (a download), else into
    staging/ (a version a conflict reads)."""

    path: str
    version: Version
    reused: int = 0
    reused_sha256: str = ""
    beside: bool = False


@dataclass(frozen=True)
class Assembled:
    """Where a needed version's bytes are: the whole file, or with `tail`, only what
    follows the `reused` segments the local file holds."""

    file: Path
    tail: bool
    beside: bool


class Assembler:
    """Builds files from downloaded objects, verifying every segment and the whole.

    Every file a pull needs is assembled and verified before anything in the Claude folder
    changes (a temporary beside a file is not a change: no scan takes it for one), so a
    corrupt, truncated, swapped or missing object (DamagedObject) changes nothing of the
    paths that need it.
    """

    def __init__(self, session: Session, downloads: Path) -> None:
        self.session = session
        self.downloads = downloads
        self.assembled: dict[tuple[str, str, int], Assembled] = {}

    def get(self, path: str, version: Version) -> Assembled:
        return self.assembled[(path, version.sha256, version.size)]

    def path_of(self, path: str, version: Version) -> Path:
        return self.get(path, version).file

    def assemble(self, need: Needed) -> None:
        version = need.version
        key = (need.path, version.sha256, version.size)
        if key in self.assembled:
            return
        destination, beside = self._destination(need)
        try:
            self._write(need, destination)
        except BaseException:
            destination.unlink(missing_ok=True)
            raise
        self.assembled[key] = Assembled(destination, need.reused > 0, beside)

    def _destination(self, need: Needed) -> tuple[Path, bool]:
        """Where to write `need`, and whether that is beside its file."""
        if need.beside and not need.reused:
            target = self.session.target(need.path)
            if _folders_can_be_made(target.parent):
                return new_beside(target, need.version.mode), True
        folder = self.downloads / "files"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / str(len(self.assembled)), False

    def _write(self, need: Needed, destination: Path) -> None:
        """Decrypt the segments `need` fetched into `destination` (after the reused ones,
        which are only read, to check the whole file's hash)."""
        version, path = need.version, need.path
        whole = hashlib.sha256()
        with open(destination, "wb") as out:  # one beside its file has its mode already
            if need.reused:
                held = sum(segment.size for segment in version.segments[: need.reused])
                with open(self.session.target(path), "rb") as local:
                    read = read_prefix(local, held, whole.update)
                if not read or whole.hexdigest() != need.reused_sha256:
                    raise ClaudeSyncError(f"{path} changed during the pull; run it again")
            for segment in version.segments[need.reused :]:
                self._decrypt(path, segment.sha256, segment.size, TeeWriter(out, whole))
            written = out.tell()
        held = sum(segment.size for segment in version.segments[: need.reused])
        if (whole.hexdigest(), held + written) != (version.sha256, version.size):
            raise RemoteFormatError(f"{path} does not match its recorded hash: refused")

    def _decrypt(self, path: str, sha256: str, size: int, out: BinaryIO) -> None:
        name = self.session.object_name(sha256)
        source = self.downloads / object_path(name)
        try:
            digest = crypto.decrypt_stream(source, out, self.session.ws.identity)
        except FileNotFoundError:
            raise DamagedObject(path, object_path(name), "is missing on the remote") from None
        except RemoteFormatError as error:
            raise DamagedObject(
                path, object_path(name), f"is corrupt or tampered ({error})"
            ) from None
        if (digest.sha256, digest.size) != (sha256, size):
            raise DamagedObject(
                path, object_path(name), "does not match its hash (swapped or tampered)"
            )

    def discard(self) -> None:
        """Remove the temporaries beside files that were not applied (a refused path, an
        interrupted pull); what is in staging/ goes with it."""
        for assembled in self.assembled.values():
            if assembled.beside:
                assembled.file.unlink(missing_ok=True)


def _folders_can_be_made(folder: Path) -> bool:
    """Whether `folder` is a folder, or can be made: its nearest existing ancestor is one
    (not a file in the way, which the pull moves aside only when it applies the path)."""
    while not os.path.lexists(folder):
        folder = folder.parent
    return folder.is_dir()


def sync_disks() -> None:
    """Flush every written file and folder to disk, in one call: a pull does this once
    after assembling (so that no rename can put an unwritten file in place) and once
    after applying (before the state records what it wrote)."""
    os.sync()


class TeeWriter:
    def __init__(self, target: BinaryIO, digest) -> None:
        self._target = target
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()
