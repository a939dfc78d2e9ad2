"""Scan: the synced files in the Claude folder, hashed only when their stat changed."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, NoReturn

from .pathmap import TEMPORARY_NAME, TEMPORARY_PREFIX, PathMap, Rules, is_safe_path, is_utf8
from .state import Entry, Scanned, State
from .workers import cores

READ_CHUNK = 1 << 20
FILE_TYPE = 0o170000  # the bits of st_mode that say what a file is (S_IFMT)
S_IFDIR, S_IFREG, S_IFLNK = stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK


class LocalFile(NamedTuple):
    """A synced file as a scan found it. A tuple, not a dataclass: a scan makes one per file,
    and a frozen dataclass costs five times as much to make."""

    sha256: str
    size: int
    mtime_ns: int


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


REACHED_TWICE = "a folder reached twice (a link loop)"
CHANGING_MTIME_NS = -1  # recorded for a file written to while it was read: read it again
# The hash of a changed file a push reads only as it encrypts it (see `scan`): no SHA-256
# is this, nor "" (a deletion's), so it equals no version's.
UNHASHED = "unhashed"
HASH_ATTEMPTS = 3
# A scan shares the first level of the tree whose listings hold this many entries (files
# and folders) with a second process
SPLIT_ENTRIES = 256


def hash_with_stat(path: Path) -> LocalFile:
    """The file's hash with the size and mtime of the very bytes hashed, from the open
    file: a file written to while it is read is read again; one still changing after
    HASH_ATTEMPTS reads gets CHANGING_MTIME_NS, which no later stat matches."""
    with open(path, "rb") as handle:
        for _ in range(HASH_ATTEMPTS):
            before = os.fstat(handle.fileno())
            digest = hashlib.sha256()
            size = 0
            while chunk := handle.read(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            after = os.fstat(handle.fileno())
            stable = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
            if stable and size == after.st_size:
                return LocalFile(digest.hexdigest(), size, after.st_mtime_ns)
            handle.seek(0)
    return LocalFile(digest.hexdigest(), size, CHANGING_MTIME_NS)


def read_prefix(handle: BinaryIO, length: int, *sinks: Callable[[bytes], object]) -> bool:
    """Feed the first `length` bytes of handle to every sink; False if the file is shorter."""
    remaining = length
    while remaining:
        chunk = handle.read(min(READ_CHUNK, remaining))
        if not chunk:
            return False
        for sink in sinks:
            sink(chunk)
        remaining -= len(chunk)
    return True


def prefix_sha256(path: Path, length: int) -> str | None:
    """SHA-256 of the first `length` bytes, or None when the file is shorter."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        return digest.hexdigest() if read_prefix(handle, length, digest.update) else None


@dataclass
class Walk:
    """remote path -> (local relative path, size, mtime_ns) for every synced regular file,
    and the temporary files an interrupted run left behind (local relative paths)."""

    files: dict[str, tuple[str, int, int]]
    temporaries: list[str]
    unsyncable: list[str]
    unreadable: list[tuple[str, str]]  # (local folder, why) that could not be listed
    unusable_links: list[tuple[str, str]]  # (local path, why) of links not followed


def follow_link(link: Path) -> tuple[os.stat_result | None, str]:
    """The stat of what a symbolic link points at, or None and why it is not followed."""
    try:
        info = link.stat()
    except OSError as error:  # dangling, or a loop of links
        return None, f"a symbolic link to nothing usable ({error.strerror})"
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        return None, "a symbolic link to a special file"
    if info.st_uid != os.getuid():
        return None, "a symbolic link to what another user owns"
    return info, ""


def walk(claude: Path, rules: Rules, paths: PathMap) -> Walk:
    """Every synced regular file. Symbolic links to the user's own files and folders are
    followed (CLAUDE.md kept in a dotfiles repository, projects/ moved to another disk);
    other links, and a folder reached twice (a loop), are not."""
    found = Walk({}, [], [], [], [])
    for remote, local, size, mtime_ns in walk_files(claude, rules, paths, found):
        found.files[remote] = (local, size, mtime_ns)
    return found


def walk_files(
    claude: Path, rules: Rules, paths: PathMap, found: Walk
) -> Iterator[tuple[str, str, int, int]]:
    """`walk`, one file at a time as it is reached: (remote path, local path, size,
    mtime_ns); the rest of what it meets goes into `found`. A scan takes each file as it
    comes, and holds no list of the whole tree beside its own."""
    if not claude.is_dir():
        return
    walker = FolderWalker(claude, rules, paths, found)
    pending = [""]
    while pending:
        listing = walker.listing(pending.pop())
        if listing is not None:
            yield from walker.files(listing, pending)


class Listing(NamedTuple):
    """The entries of a folder as listed (or some of them: see `pick`, `part`). In a folder that
    names each entry on its own (`names_each_entry`), `remotes` holds each entry's remote
    path, named as the folder was listed; in any other, each entry's is `prefix` and its
    name."""

    folder: str  # a local path, "" for the top
    entries: list[os.DirEntry[str]]
    remotes: list[str] | None
    prefix: str | None

    def pick(self, marks: list[bool], marked: bool) -> Listing:
        """The entries whose mark (in `marks`, one per entry) is `marked`."""

        def picked(items: list) -> list:
            return [item for item, mark in zip(items, marks, strict=True) if mark == marked]

        remotes = picked(self.remotes) if self.remotes is not None else None
        return Listing(self.folder, picked(self.entries), remotes, self.prefix)

    def part(self, start: int) -> Listing:
        """Every other entry, from the one at `start`."""
        remotes = self.remotes[start::2] if self.remotes is not None else None
        return Listing(self.folder, self.entries[start::2], remotes, self.prefix)


class FolderWalker:
    """Lists the folders of a walk one at a time, each entered once (see EnteredFolders)."""

    def __init__(self, claude: Path, rules: Rules, paths: PathMap, found: Walk) -> None:
        self.claude = claude
        self.root = str(claude)
        self.rules = rules
        self.paths = paths
        self.found = found  # what the walk meets beside the synced files
        self.entered = EnteredFolders(self.root)
        self.entered.first_time("", claude.stat())
        # The remote path of each folder to walk (below a project folder) whose remote path
        # is not its local one, as the listing it is in named it: the one PathMap.to_remote
        # gives it. Taken out as the folder is listed.
        self.remote_folders: dict[str, str] = {}

    def listing(self, folder: str) -> Listing | None:
        """The entries of `folder` (a local path, "" for the top); None when it cannot be
        listed (when unreadable, noted in `found`)."""
        remote = self.remote_folders.pop(folder, folder)
        try:
            entries = list(os.scandir(f"{self.root}/{folder}" if folder else self.root))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:  # unreadable: what is in it is unknown, not deleted
            self.found.unreadable.append((folder, error.strerror or type(error).__name__))
            return None
        # A path's remote path is its folder's and its name, the folder's mapped once: outside
        # projects/ it is the path itself, and below a project folder's entry
        # (projects/<folder>/<entry>/...) see PathMap.to_remote. Only in projects/ and in a
        # project folder is each name mapped on its own, in the order they are listed in
        # (an entry that is gone by the time it is looked at has claimed its name all the
        # same, as it would have, had it stayed a moment longer).
        if names_each_entry(folder):
            to_remote = self.paths.to_remote
            remotes = [to_remote(f"{folder}/{entry.name}") for entry in entries]
            return Listing(folder, entries, remotes, None)
        return Listing(folder, entries, None, remote + "/" if folder else "")

    def files(
        self, listing: Listing, pending: MutableSequence[str]
    ) -> Iterator[tuple[str, str, int, int]]:
        """The synced files among the entries of `listing`, as `walk_files` gives them; the
        folders among them to walk are appended to `pending`."""
        rules, found = self.rules, self.found
        folder, prefix, remotes = listing.folder, listing.prefix, listing.remotes
        # Below a safe folder a name is safe when it is UTF-8 with no backslash (a name from
        # the file system is never empty, `.`, `..`, or holds a slash or a NUL).
        safe_folder = prefix is not None and prefix != "" and is_safe_path(prefix[:-1])
        # Whether the rules take every file here whose own name they allow (True), none
        # (False), or decide on each file's whole path (None).
        whole = rules.decided(prefix[:-1]) if prefix else None
        local_prefix = folder + "/" if folder else ""
        # Where the remote path is the local one, one string serves as both.
        same = prefix == local_prefix
        for index, entry in enumerate(listing.entries):
            name = entry.name
            local = local_prefix + name
            info: os.stat_result | None = None  # a folder's is not taken (see EnteredFolders)
            if entry.is_dir(follow_symlinks=False):
                kind = S_IFDIR
            else:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                kind = info.st_mode & FILE_TYPE
            remote = local if same else (prefix + name if remotes is None else remotes[index])
            if kind == S_IFLNK:
                if not (rules.may_enter(remote) or rules.synced(remote)):
                    continue
                followed, why = follow_link(self.claude / local)
                if followed is None:
                    found.unusable_links.append((local, why))
                    continue
                info = followed
                kind = info.st_mode & FILE_TYPE
            if kind == S_IFREG:
                if name.startswith(TEMPORARY_PREFIX) and TEMPORARY_NAME.match(name):
                    found.temporaries.append(local)
                elif rules.name_synced(name) if whole else (whole is None and rules.synced(remote)):
                    # (is_utf8's own first test, made here: it runs for every file)
                    safe = (
                        ("\\" not in name and (name.isascii() or is_utf8(name)))
                        if safe_folder
                        else None
                    )
                    if safe or (safe is None and is_safe_path(remote)):
                        yield remote, local, info.st_size, info.st_mtime_ns
                    else:
                        found.unsyncable.append(local)
            elif kind == S_IFDIR:
                if not rules.may_enter(remote):
                    continue
                if not is_utf8(name):
                    found.unsyncable.append(local + "/")
                    continue
                # A link's folder is known by what it points at, another by its listing
                if self.entered.first_time(local, info, entry.inode()):
                    pending.append(local)
                    if remote != local:
                        self.remote_folders[local] = remote
                else:
                    found.unusable_links.append((local, REACHED_TWICE))


def names_each_entry(folder: str) -> bool:
    """Whether each entry of `folder` is named on the remote on its own: in projects/ and in
    a project folder (see PathMap.to_remote). The PathMap decides those names as it meets
    them, the first to claim a name keeping it; below them, a folder's name decides its
    entries'."""
    parts = folder.split("/", 2)
    return parts[0] == "projects" and len(parts) <= 2


class EnteredFolders:
    """The folders a walk entered, so that none is entered twice: a link to one walked
    already, a second hard link to a folder, a bind mount of one. A mount is known for what
    it is only one level below it (its own listed number is that of the folder it covers),
    so the files right in a folder mounted below itself are walked twice.

    A folder is the same as another when both have one device and inode. The listing gives
    each entry's inode number without a stat, so the stats are taken only of folders whose
    number came before (the same folder, or one with that number on another device): a
    tree whose folders' numbers all differ costs no stat of a folder."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._by_number: dict[int, list[str]] = {}  # inode number -> folders with it
        self._identities: dict[str, tuple[int, int] | None] = {}  # folder -> (device, inode)
        self.order: list[tuple[str, int]] = []  # (folder, number) as each was entered

    def first_time(self, folder: str, info: os.stat_result | None, number: int = 0) -> bool:
        """Whether `folder` (a path below the root) is new, recording it if so. `info`: its
        stat, when taken (a link's, followed); else `number` is its listed inode number."""
        if info is not None:
            number = info.st_ino
            self._identities[folder] = (info.st_dev, info.st_ino)
        if self.known(folder, number):
            return False
        self._by_number.setdefault(number, []).append(folder)
        self.order.append((folder, number))
        return True

    def known(self, folder: str, number: int) -> bool:
        """Whether `folder`, listed with inode `number`, is one entered already (recording
        nothing)."""
        before = self._by_number.get(number)
        if not before:
            return False
        identity = self._identity(folder)
        return identity is not None and any(self._identity(other) == identity for other in before)

    def _identity(self, folder: str) -> tuple[int, int] | None:
        """The device and inode of `folder`, taken once; None when it cannot be had."""
        if folder not in self._identities:
            try:
                info = os.stat(f"{self._root}/{folder}" if folder else self._root)
            except OSError:
                self._identities[folder] = None
            else:
                self._identities[folder] = (info.st_dev, info.st_ino)
        return self._identities[folder]


@dataclass
class Scan:
    """What a scan of the Claude folder found."""

    files: dict[str, LocalFile]
    warnings: list[str]
    unknown: list[str]  # remote path prefixes of folders that could not be read
    # The paths of `files` not known to equal their state entry's base: no entry, a
    # tombstone, another hash or size, or not hashed yet (UNHASHED). The others are their
    # base, which is what lets a run look at what changed alone.
    differing: set[str]


def differs(local: LocalFile, entry: Entry | Scanned | None) -> bool:
    """Whether a local file differs from its entry's base. The base's hash and size as the
    entry keeps them (or its row, `Files.scanned`) are enough: its whole version is not."""
    if entry is None or entry.base_deleted:
        return True
    return (local.sha256, local.size) != (entry.base_sha256, entry.base_size)


def scan(
    claude: Path, rules: Rules, paths: PathMap, state: State, defer_hashes: bool = False
) -> Scan:
    """remote path -> LocalFile, for synced paths only; files whose size and mtime match
    the state are not read.

    With `defer_hashes` (a push), a changed file whose size differs from its base's, or
    that has no base, is not read either: its content differs from the base whatever its
    hash, so the push reads it once, as it encrypts it, and hashes it then. It gets the hash
    UNHASHED (see `Session.hash_deferred` for the few a push must hash first).

    Temporary files of an interrupted run (the caller holds the lock) are removed. A file
    that cannot be read counts as unchanged, and so does every file the state knows below a
    folder that cannot be read: neither is ever taken for a deletion.
    """
    walked = Walk({}, [], [], [], [])
    part = ScannedFiles(claude, state, defer_hashes)
    if claude.is_dir():
        _scan_tree(FolderWalker(claude, rules, paths, walked), part)
    result = Scan(part.files, [], [], part.differing)
    for folder, why in walked.unreadable:
        result.warnings.append(
            f"{folder or claude}/: cannot be read ({why}); what is in it is left as it is"
        )
        result.unknown.append(paths.to_remote(folder) + "/" if folder else "")
    for local, why in walked.unusable_links:
        result.warnings.append(f"{local}: {why}; what it held is left as it is")
        result.unknown.append(paths.to_remote(local))
    for temporary in walked.temporaries:
        (claude / temporary).unlink(missing_ok=True)
    for local in walked.unsyncable:
        result.warnings.append(
            f"{local!r}: a name that cannot be synced safely (not UTF-8, or a way out of "
            "the folder); skipped"
        )
    result.warnings += part.unreadable
    if result.unknown:  # what the state knows below them counts as unchanged
        for remote in state.files:
            if (
                remote not in result.files
                and under(remote, result.unknown)
                and rules.synced(remote)
            ):
                entry = state.files[remote]
                if not entry.base_deleted:
                    result.files[remote] = LocalFile(
                        entry.base_sha256, entry.base_size, entry.mtime_ns or 0
                    )
    return result


class ScannedFiles:
    """What a scan makes of the files a walk gives: each compared with its state entry,
    and read only when its stat changed (see `scan`)."""

    def __init__(self, claude: Path, state: State, defer_hashes: bool) -> None:
        self.claude = claude
        self.state = state
        self.defer_hashes = defer_hashes
        self.files: dict[str, LocalFile] = {}
        self.differing: set[str] = set()  # see Scan.differing
        self.unreadable: list[str] = []  # warned of after the folders, as the walk met them

    def take(self, walked: Iterable[tuple[str, str, int, int]]) -> None:
        """Take files as `walk_files` gives them."""
        files, differing, claude = self.files, self.differing, self.claude
        saved_ns = self.state.saved_ns
        scanned = self.state.files.scanned
        rows = self.state.files.stored_rows()
        for remote, local, size, mtime_ns in walked:
            # The test below, made on the row itself while there are no entries (see
            # Files.stored_rows): (path, sha256, base_size, deleted, size, mtime_ns, flags).
            row = rows.get(remote)
            if (
                row is not None
                and not row[3]
                and row[4] == size
                and row[5] == mtime_ns
                and mtime_ns < saved_ns
            ):
                files[remote] = LocalFile(row[1], row[2], mtime_ns)
                continue
            known = scanned(remote)
            if (
                known is not None
                and not known.base_deleted
                and known.size == size
                and known.mtime_ns == mtime_ns
                and mtime_ns < saved_ns  # else racily clean: read it again
            ):
                files[remote] = LocalFile(known.base_sha256, known.base_size, mtime_ns)
                continue
            if self.defer_hashes and _surely_changed(known, size):
                files[remote] = LocalFile(UNHASHED, size, mtime_ns)
                differing.add(remote)
                continue
            try:
                hashed = files[remote] = hash_with_stat(claude / local)
            except (FileNotFoundError, IsADirectoryError):
                continue
            except OSError as error:
                self.unreadable.append(f"{local}: cannot be read ({error.strerror}); skipped")
                if known is not None and not known.base_deleted:  # counts as unchanged
                    files[remote] = LocalFile(known.base_sha256, known.base_size, mtime_ns)
            else:
                if differs(hashed, known):
                    differing.add(remote)


def _scan_tree(walker: FolderWalker, part: ScannedFiles) -> None:
    """Walk the tree into `part`: level by level from the top, until the listings of a
    level hold SPLIT_ENTRIES entries; then those are shared (see `_scan_shared`)."""
    level = [""]
    while level:
        listings = deque(found for found in map(walker.listing, level) if found is not None)
        if sum(len(listing.entries) for listing in listings) >= SPLIT_ENTRIES:
            _scan_shared(walker, part, listings)
            return
        level = []
        for listing in listings:
            part.take(walker.files(listing, level))


def _scan_shared(walker: FolderWalker, part: ScannedFiles, listings: deque[Listing]) -> None:
    """Take the entries of `listings`, and all below them, into `part`: every other entry
    (a file, or a folder with all below it) in a second process where one can be started
    (see `_scan_split`), else all here: first the ones this process takes, then the
    others, which is what a split gives (or, should the halves meet, makes it give).

    The folders that name each of their entries (projects/ and the project folders) are
    entered and listed here first: the names they give depend on the order they are met
    in. Dealing entries, not folders, shares a folder of many files as evenly as a level
    of many folders.

    Too few entries left once those are taken (a level of many project folders of few
    entries each) are not worth a process, and are walked here all the same way. A
    listing is let go of as soon as it is taken (its entries are many at that level), and
    the whole listings once dealt."""
    shared = _name_here(walker, part, listings)
    worth_sharing = sum(len(listing.entries) for listing in shared) >= SPLIT_ENTRIES
    mine, theirs = _deal(shared)
    if not (worth_sharing and _may_fork() and _scan_split(walker, part, mine, theirs)):
        _walk_below(walker, part, mine)
        _walk_below(walker, part, theirs)


# The folders whose entries may name each of theirs: the top (its projects/) and projects/
NAMING_PARENTS = ("", "projects")


def _name_here(
    walker: FolderWalker, part: ScannedFiles, listings: deque[Listing]
) -> deque[Listing]:
    """Take here the entries of `listings` that name each of theirs, and list those: the
    listings left to share, and those made here (see `_scan_shared`). Empties `listings`."""
    shared: deque[Listing] = deque()
    while listings:
        listing = listings.popleft()
        if listing.folder in NAMING_PARENTS:
            local_prefix = listing.folder + "/" if listing.folder else ""
            naming = [names_each_entry(local_prefix + entry.name) for entry in listing.entries]
            if any(naming):
                below: list[str] = []
                part.take(walker.files(listing.pick(naming, True), below))
                listings.extend(found for found in map(walker.listing, below) if found is not None)
                listing = listing.pick(naming, False)
        shared.append(listing)
    return shared


def _deal(listings: deque[Listing]) -> tuple[deque[Listing], deque[Listing]]:
    """Every other entry of `listings`, counted across them, and the others. Empties
    `listings`."""
    mine: deque[Listing] = deque()
    theirs: deque[Listing] = deque()
    dealt = 0
    while listings:
        listing = listings.popleft()
        mine.append(listing.part(dealt % 2))
        theirs.append(listing.part(1 - dealt % 2))
        dealt += len(listing.entries)
    return mine, theirs


def _walk_below(walker: FolderWalker, part: ScannedFiles, listings: deque[Listing]) -> None:
    """Take the entries of `listings` into `part`, letting go of each once taken (empties
    `listings`), and walk the folders among them."""
    pending: list[str] = []
    while listings:
        part.take(walker.files(listings.popleft(), pending))
    while pending:
        listing = walker.listing(pending.pop())
        if listing is not None:
            part.take(walker.files(listing, pending))


def _may_fork() -> bool:
    """Whether a second process may walk: a second core, and no thread that a fork would
    leave half-copied."""
    return hasattr(os, "fork") and cores() > 1 and threading.active_count() == 1


STOPPING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _scan_split(
    walker: FolderWalker, part: ScannedFiles, mine: deque[Listing], theirs: deque[Listing]
) -> bool:
    """Walk `mine` here into `part` while a forked process walks `theirs` and sends back
    what it made of them (its files, warnings and the folders it entered). The stat calls
    of a walk wait on the kernel, and two processes wait on two cores. False, having walked
    nothing, when no process can be started.

    Should that process fail, or have entered a folder this one entered too (one folder
    reached by two paths, one in each half), its result is dropped and `theirs` walked
    here, after `mine`: the walk in one process decides which path is kept. No stopping
    signal reaches either process between the fork and the code that handles it, and
    should this one stop (Ctrl-C, a hook's time running out), the other is stopped too."""
    # Imported here, not above: a tree with no level of SPLIT_ENTRIES sends nothing.
    import pickle

    entered_before = len(walker.entered.order)
    reading, writing = os.pipe()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        child = os.fork()
    except OSError:  # no process to be had (a limit on processes, or on memory)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(reading)
        os.close(writing)
        return False
    if child == 0:
        _scan_in_child(walker, part, theirs, writing, entered_before, blocked)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(writing)
        with open(reading, "rb") as pipe:
            _walk_below(walker, part, mine)
            message = pipe.read()
    except BaseException:
        os.kill(child, signal.SIGKILL)
        raise
    finally:
        _, status = os.waitpid(child, 0)
    if status == 0:
        same, changed, unreadable, found, entered = pickle.loads(message)
        del message  # before the files are made again from it: the peak of a big tree
        if not any(walker.entered.known(folder, number) for folder, number in entered):
            _take_theirs(part, same, changed)
            part.unreadable += unreadable
            walker.found.temporaries += found.temporaries
            walker.found.unsyncable += found.unsyncable
            walker.found.unreadable += found.unreadable
            walker.found.unusable_links += found.unusable_links
            return True
    _walk_below(walker, part, theirs)
    return True


def _scan_in_child(
    walker: FolderWalker,
    part: ScannedFiles,
    listings: deque[Listing],
    writing: int,
    entered: int,
    signals: set[signal.Signals],
) -> NoReturn:
    """The forked process's work: take `listings` (see `_walk_below`), send the result,
    exit (never return into the caller's code, nor flush what its buffers held at the
    fork). It holds no file but the pipe it writes to (not the lock: should the first
    process be killed, the lock is free at once). A file equal to its state entry's base
    is sent as its path and mtime alone (see `_take_theirs`)."""
    import pickle  # imported already, before the fork (see `_scan_split`)

    status = 1
    try:
        os.closerange(3, writing)
        os.closerange(writing + 1, os.sysconf("SC_OPEN_MAX"))
        signal.pthread_sigmask(signal.SIG_SETMASK, signals)
        own = ScannedFiles(part.claude, part.state, part.defer_hashes)
        walker.found = Walk({}, [], [], [], [])
        _walk_below(walker, own, listings)
        differing = own.differing
        same = {r: file.mtime_ns for r, file in own.files.items() if r not in differing}
        changed = {remote: tuple(own.files[remote]) for remote in differing}
        message = (same, changed, own.unreadable, walker.found, walker.entered.order[entered:])
        with open(writing, "wb") as pipe:
            pickle.dump(message, pipe, pickle.HIGHEST_PROTOCOL)
        status = 0
    finally:
        os._exit(status)


def _take_theirs(part: ScannedFiles, same: dict[str, int], changed: dict[str, tuple]) -> None:
    """Add what the forked process found to `part`. A file not in Scan.differing equals its
    base, so it is made again from the state here: its hash is the state's own string, not a
    copy sent through the pipe, and a hundred thousand of them cost little memory."""
    files, scanned, new = part.files, part.state.files.scanned, tuple.__new__
    rows = part.state.files.stored_rows()
    for remote, mtime_ns in same.items():
        row = rows.get(remote)
        if row is not None:
            sha256, size = row[1], row[2]
        else:
            known = scanned(remote)
            assert known is not None  # a file with no entry differs
            sha256, size = known.base_sha256, known.base_size
        # A LocalFile made without its Python-level __new__, as Files.scanned makes rows
        files[remote] = new(LocalFile, (sha256, size, mtime_ns))
    for remote, file in changed.items():
        files[remote] = LocalFile._make(file)
    part.differing.update(changed)


def _surely_changed(known: Scanned | None, size: int) -> bool:
    """Whether a file of `size` bytes differs from its base whatever its bytes: it has
    none, or another size (an empty file is hashed all the same: that costs nothing)."""
    if size == 0:
        return False
    return known is None or known.base_deleted or known.base_size != size


def under(path: str, prefixes: list[str]) -> bool:
    """Whether `path` lies below one of `prefixes` (folder paths ending in /, or "" for all)."""
    return any(path.startswith(prefix) for prefix in prefixes)
