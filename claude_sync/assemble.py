"""Assembling pulled files from their objects, every byte verified, each written once.

The objects are downloaded into staging/, or, on a remote in a local folder, read where
they are (`Remote.folder_here`): a copy would only be read once and removed.

A file a pull downloads is decrypted straight into a temporary beside its target (the
name every scan passes over and removes), so that applying it is one rename. A file that
only grew elsewhere gets just its new segments, in staging/, which are then appended to
the live file: its unchanged prefix is read once (to check the whole file's hash) and
never written. Versions a conflict needs (several per path, read more than once) are
assembled in staging/. With megabytes to decrypt, whole files are decrypted on every core
(see `workers`); the identity goes to those processes through a pipe, never argv or disk.

Nothing is synced to disk here, file by file: the pull syncs once, after every file is
assembled and before the first rename (see `sync_disks`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pyrage import x25519

from . import crypto
from .claude_folder import Beside, open_beside, place_beside
from .errors import ClaudeSyncError, DamagedObject, RemoteFormatError
from .remote import object_path
from .scan import read_prefix
from .session import Session
from .versions import Segment, Version
from .workers import batch_bytes, batches, process_pool, worth_a_pool

if TYPE_CHECKING:
    from concurrent.futures import Future


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


@dataclass(frozen=True)
class Fetched:
    """A downloaded object, its path on the remote (for messages), and what it holds."""

    file: str  # a string, not a Path: a pull makes one for each object, and sends it on
    remote_path: str
    holds: Segment
    remove: bool = False  # no other version needs it: removed once decrypted


Damage = tuple[str, str]  # (an object's path on the remote, what is wrong with it)
WHOLE_MISMATCH = "whole file"


class Assembler:
    """Builds files from downloaded objects, verifying every segment and the whole.

    Every file a pull needs is assembled and verified before anything in the Claude folder
    changes (a temporary beside a file is not a change: no scan takes it for one), so a
    corrupt, truncated, swapped or missing object (DamagedObject) changes nothing of the
    paths that need it.
    """

    def __init__(self, session: Session, downloads: Path, in_place: Path | None) -> None:
        self.session = session
        self.downloads = downloads
        # The local remote's folder whose objects are read where they are (none downloaded,
        # none removed), or None: the objects are downloaded into `downloads`.
        self.in_place = in_place
        self.assembled: dict[tuple[str, str, int], Assembled] = {}
        # object name -> the versions that need it: a download no other needs is removed
        self._uses: Counter[str] = Counter()
        self._makeable: dict[str, bool] = {}  # `_folders_can_be_made`'s answers, this run

    def get(self, path: str, version: Version) -> Assembled:
        return self.assembled[(path, version.sha256, version.size)]

    def applied(self, path: str, version: Version) -> None:
        """Forget `path`'s version, which the pull wrote into place: its temporary beside the
        file is the file now, or removed, and `discard` need not remove it again."""
        del self.assembled[(path, version.sha256, version.size)]

    def path_of(self, path: str, version: Version) -> Path:
        return self.get(path, version).file

    def assemble_all(
        self,
        wanted: list[Needed],
        fetch: Callable[[list[Needed]], None],
        decrypted: Callable[[int], None] | None,
    ) -> dict[str, DamagedObject]:
        """Download the objects of every needed version (`fetch` them) and assemble it; the
        paths refused, each with why: an object it needs is missing or damaged on the
        remote. With a pool, the versions are fetched in batches of `workers.batch_bytes`,
        the processes decrypting one batch while the next is downloaded. `decrypted` is
        told the fetched bytes (`fetched_bytes`) of each version once it is assembled."""
        refused: dict[str, DamagedObject] = {}
        identity = self.session.ws.identity
        told = decrypted or (lambda size: None)
        if self.in_place is None:
            self._uses.update(
                self.session.object_name(segment.sha256)
                for need in wanted
                for segment in need.version.segments[need.reused :]
            )
        if not worth_a_pool([need.version.size for need in wanted if not need.reused]):
            fetch(wanted)
            for need, decryption in self._prepare(wanted, refused, told):
                damage = decrypt_file(*decryption, identity)
                if damage is not None:
                    refused[need.path] = _refusal(need, damage)
                told(fetched_bytes(need))
            return refused
        from concurrent.futures import as_completed  # a pool only: not on start-up

        pool = process_pool(_load_identity, (str(identity),))
        pending: dict[Future, list[Needed]] = {}
        try:
            for group in _transfer_groups(wanted):
                fetch(group)
                for batch in batches(self._prepare(group, refused, told), _size_of):
                    future = pool.submit(_decrypt_batch, [decryption for _, decryption in batch])
                    pending[future] = [need for need, _ in batch]
            for future in as_completed(pending):
                for need, damage in zip(pending[future], future.result(), strict=True):
                    if damage is not None:
                        refused.setdefault(need.path, _refusal(need, damage))
                    told(fetched_bytes(need))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return refused

    def _prepare(
        self,
        wanted: list[Needed],
        refused: dict[str, DamagedObject],
        decrypted: Callable[[int], None],
    ) -> Iterator[tuple[Needed, Decryption]]:
        """Make each needed version's destination; yield the whole files to decrypt, as
        they are ready. A grown file's new segments are assembled here (`decrypted` told of
        them), its refusal put in `refused`."""
        for need in wanted:
            key = (need.path, need.version.sha256, need.version.size)
            if key in self.assembled or need.path in refused:
                continue
            destination = self._destination(need)
            if isinstance(destination, Beside):
                self.assembled[key] = Assembled(destination.path, False, True)
            else:
                self.assembled[key] = Assembled(destination, need.reused > 0, False)
            if need.reused:
                assert isinstance(destination, Path)  # a grown file's tail is in staging/
                damage = self._assemble_tail(need, destination)
                if damage is not None:
                    refused[need.path] = _refusal(need, damage)
                decrypted(fetched_bytes(need))
                continue
            expected = (need.version.sha256, need.version.size)
            yield need, (self._fetched(need), destination, expected)

    def _assemble_tail(self, need: Needed, destination: Path) -> Damage | None:
        """Write the new segments of a grown file into `destination`, checking the whole
        file's hash over the local prefix (read, not copied) and them."""
        version, path = need.version, need.path
        whole = hashlib.sha256()
        held = sum(segment.size for segment in version.segments[: need.reused])
        with open(self.session.target(path), "rb") as local:
            read = read_prefix(local, held, whole.update)
        if not read or whole.hexdigest() != need.reused_sha256:
            raise ClaudeSyncError(f"{path} changed during the pull; run it again")
        identity = self.session.ws.identity
        with open(destination, "wb") as out:
            for fetched in self._fetched(need):
                damage = _decrypt_segment(fetched, TeeWriter(out, whole), identity)
                if damage is not None:
                    return damage
            written = out.tell()
        if (whole.hexdigest(), held + written) != (version.sha256, version.size):
            return WHOLE_MISMATCH, ""
        return None

    def _fetched(self, need: Needed) -> list[Fetched]:
        """The downloaded objects of the segments `need` fetched, in order."""
        found = []
        for segment in need.version.segments[need.reused :]:
            name = self.session.object_name(segment.sha256)
            remote_path = object_path(name)
            if self.in_place is not None:
                found.append(Fetched(f"{self.in_place}/{remote_path}", remote_path, segment))
            else:
                file, remove = f"{self.downloads}/{remote_path}", self._uses[name] == 1
                found.append(Fetched(file, remote_path, segment, remove))
        return found

    def _destination(self, need: Needed) -> Path | Beside:
        """Where to write `need`: a temporary beside its file, made as it is written (by
        the process that decrypts it), or a file in staging/."""
        if need.beside and not need.reused:
            target = self.session.target(need.path)
            if _folders_can_be_made(os.path.dirname(target), self._makeable):
                absent = self.session.found_absent(need.path)
                return place_beside(target, need.version.mode, absent)
        folder = self.downloads / "files"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / str(len(self.assembled))

    def discard(self) -> None:
        """Remove the temporaries beside files that were not applied (a refused path, an
        interrupted pull); what is in staging/ goes with it."""
        for assembled in self.assembled.values():
            if assembled.beside:
                assembled.file.unlink(missing_ok=True)


def _refusal(need: Needed, damage: Damage) -> DamagedObject:
    """The refusal of `need` for `damage`. A file whose segments each check out but whose
    whole does not was published so by a holder of the key: the pull stops."""
    if damage[0] == WHOLE_MISMATCH:
        raise RemoteFormatError(f"{need.path} does not match its recorded hash: refused")
    return DamagedObject(need.path, *damage)


def decrypt_file(
    fetched: list[Fetched],
    destination: Path | Beside,
    expected: tuple[str, int],
    identity: x25519.Identity,
) -> Damage | None:
    """Decrypt each object in turn into `destination` (a temporary beside a file is made
    here); None when every one checks out and the whole is `expected` (its SHA-256 and
    size), else what is wrong.

    A file of one segment is that segment, so the segment's hash is the whole file's; a
    file of several is hashed whole as well."""
    whole = hashlib.sha256() if len(fetched) > 1 else None
    opened = open_beside(destination) if isinstance(destination, Beside) else None
    with open(destination if opened is None else opened, "wb") as out:
        writer: BinaryIO = out if whole is None else TeeWriter(out, whole)
        for one in fetched:
            damage = _decrypt_segment(one, writer, identity)
            if damage is not None:
                return damage
        size = out.tell()
    if whole is not None:
        wrote = (whole.hexdigest(), size)
    elif fetched:
        wrote = (fetched[0].holds.sha256, size)
    else:
        wrote = (hashlib.sha256().hexdigest(), size)
    return None if wrote == expected else (WHOLE_MISMATCH, "")


def _decrypt_segment(fetched: Fetched, out: BinaryIO, identity: x25519.Identity) -> Damage | None:
    try:
        # Read in place, an object may be whatever the folder holds: a link or a FIFO
        # (which would wait for a writer) is refused, as rclone would not copy it.
        if not stat.S_ISREG(os.lstat(fetched.file).st_mode):
            return fetched.remote_path, "is not a regular file"
        digest = crypto.decrypt_stream(fetched.file, out, identity)
    except FileNotFoundError:
        return fetched.remote_path, "is missing on the remote"
    except RemoteFormatError as error:
        return fetched.remote_path, f"is corrupt or tampered ({error})"
    if (digest.sha256, digest.size) != (fetched.holds.sha256, fetched.holds.size):
        return fetched.remote_path, "does not match its hash (swapped or tampered)"
    if fetched.remove:  # here, in parallel, not all at the end of the pull
        os.unlink(fetched.file)
    return None


_pool_identity: x25519.Identity | None = None  # in a pool process: the identity to decrypt with


def _load_identity(text: str) -> None:
    global _pool_identity
    _pool_identity = x25519.Identity.from_str(text)


# What a pool process decrypts for one file: the objects, where to, the whole file's hash
# and size.
Decryption = tuple[list[Fetched], Path | Beside, tuple[str, int]]


def fetched_bytes(need: Needed) -> int:
    """The bytes of `need`'s file that come from the remote (all but what it reuses)."""
    return sum(segment.size for segment in need.version.segments[need.reused :])


def _transfer_groups(wanted: list[Needed]) -> Iterator[list[Needed]]:
    """`wanted` in order, in groups of about `workers.batch_bytes` fetched bytes."""
    most = batch_bytes(sum(map(fetched_bytes, wanted)))
    group: list[Needed] = []
    size = 0
    for need in wanted:
        group.append(need)
        size += fetched_bytes(need)
        if size >= most:
            yield group
            group, size = [], 0
    if group:
        yield group


def _size_of(work: tuple[Needed, Decryption]) -> int:
    return work[0].version.size


def _decrypt_batch(decryptions: list[Decryption]) -> list[Damage | None]:
    assert _pool_identity is not None
    return [decrypt_file(*decryption, _pool_identity) for decryption in decryptions]


def _folders_can_be_made(folder: str, known: dict[str, bool]) -> bool:
    """Whether `folder` is a folder, or can be made: its nearest existing ancestor is one
    (not a file in the way, which the pull moves aside only when it applies the path).
    `known` holds the answers for the folders asked already, this one's parent among them
    (a pull writes into thousands of new folders below a few). Strings, not Paths: a Path
    made anew is hashed anew, and a pull asks this for each file."""
    answer = known.get(folder)
    if answer is None:
        parent = os.path.dirname(folder) or "."
        if os.path.lexists(folder) or folder == parent:
            answer = os.path.isdir(folder)
        else:
            answer = _folders_can_be_made(parent, known)
        known[folder] = answer
    return answer


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
