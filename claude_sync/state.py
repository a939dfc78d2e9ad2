"""The state: per path, what this device last synced, and the file's stat at that moment.

It is kept in `state.sqlite` in the claude-sync home, an SQLite database (Python's standard
library), so that what a run costs follows what changed, not the size of the tree: loading
reads the columns the scan needs in one query and parses a path's whole base version only
when something asks for it; saving writes only the rows that changed. Each save is one
transaction in SQLite's rollback journal (its default, which works on any file system,
network mounts included): a crash leaves the state as it was before the save or after it,
never between.

    PRAGMA user_version = 1        -- the layout below

    files                          -- one row per remote path the device synced
        path TEXT PRIMARY KEY
        sha256, base_size, deleted -- the base's hash, size, and whether it is a tombstone
        size, mtime_ns             -- the local file's stat when it matched the base (or NULL)
        flags                      -- 1 swept, 2 publish, 4 settled, 8 published
        base TEXT                  -- the base version as JSON, as a journal entry writes it

    meta                           -- name -> JSON value
        device_id, remote_root     -- whose state this is: another's is not used
        saved_ns                   -- the file system's time at the last save
        last_push, last_pull       -- "<iso>" or null
        projects                   -- {"<remote folder>": {"key": "~/app", "path": "/home/ann/app"}}
        moves                      -- {"<remote folder>": {"to": "<remote folder>", "at": 17...}}
        publish_moves, rebuilding  -- true or false
        layout                     -- "<path_map and projects settings, as JSON>"
        numbered                   -- {"<remote folder>": "<local folder>.2"}
        journal_seen, own_seq      -- {"<device id>": 41}, 17
        recorded                   -- {"<folder>/<name>.jsonl": [inode, size, mtime_ns, path]}
        settled_view               -- {"view": {"<device id>": ["<entry name>", ...]},
                                       "config": "<what decided the paths>"} or null
        settled_conflicts          -- {"view": <as in settled_view>,
                                       "copies": ["<local path>", ...]} or null

`base` is the version this device last pushed or adopted. `size`/`mtime_ns` are the local
file's stat when it matched `base`, so an unchanged file is not read again, but only when
that mtime is older than `saved_ns` (git's racily-clean rule: a file written in the same
clock tick as the state was saved may have changed again unseen; `saved_ns` is read from the
clock that stamps files, which may run coarser or behind the system's). `swept` marks a
transcript Claude Code removed locally: kept on the remote, not downloaded again.
`publish` marks a base that a pull settled between different contents, or where a local
edit matched the other side: the next push publishes it as a new version of this device,
even with no file to send, so that every device ends with this one outcome. `settled`
marks a conflict copy `claude-sync conflicts` removed: under a session, where a missing copy
is otherwise taken for Claude Code's cleanup, the next push still sends its tombstone.
`published` marks a base that this device's journal names as its version of the path: a
push compares only the other entries with what it published, so that what it costs follows
what changed. Any new base clears it, and so does an older claude-sync writing the row.
An unreadable store is set aside (`state.sqlite.corrupt`) and rebuilt by comparing hashes.
`projects` is the project table (see `projects`) as last synced: a project folder with no
path recorded in it keeps its key between runs. `rebuilding` marks a state made anew (no
store: a device joining, or one that lost it) until a whole pull has settled every
path: until then a local file with no entry has no known base and never outranks the
remote; after it, such a file was made here, and meets the remote's as a conflict.
`moves` are the project folders renamed on the remote (see `moves`); `publish_moves` marks
one made here that no journal entry of this device carries yet. `layout` is what of this
device's config decided keys (`path_map`, `projects`) when last saved: a change re-keys.
`numbered` names the remote folders materialised here as `<name>.N`, because another had
their folder name here first. `journal_seen` is the highest journal entry read of each
device (a lower end later means the remote was rolled back); `own_seq` the last entry this
home wrote. `recorded` is the path each transcript of a project folder records, as a run
read it (see `projects.RecordedPaths`): kept so that a folder whose transcripts name no path
is not read again on every run. `settled_view` is the remote view (each device's entry names)
that the last pull to settle every path planned over, and the config it synced with: what
lets a later pull plan over the paths that changed since (see `actions.pull.changed_paths`).
A save that removes an entry drops it: that path has no base to be settled at. A store
written before it was kept has none. `settled_conflicts` names the conflict copies that were
in the Claude folder when that pull settled, and the view it settled over: a later pull that
finds no new entry reports them (those still there) without scanning the folder. It is
trusted only while its view is `settled_view`'s (a version that does not know it leaves it
as it was, and may settle over another view).

Earlier versions kept all of it in one `state.json` (the same fields, every path's entry as
`{"base": <version>, "size", "mtime_ns", "swept", "publish", "settled"}` under "files"),
rewritten whole by every save. One found in the home (left by an earlier version, or written
by one since) takes the store's place, and is removed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .errors import ClaudeSyncError
from .manifest import (
    moves_from_json,
    moves_to_json,
    projects_from_json,
    projects_to_json,
    version_from_json,
    version_text,
)
from .moves import Move
from .projects import Project
from .versions import Version

STATE_FILE = "state.sqlite"
LEGACY_FILE = "state.json"
STATE_VERSION = 1  # the layout of the store (PRAGMA user_version)
LEGACY_VERSION = 1  # the "version" of a state.json

SWEPT, PUBLISH, SETTLED, PUBLISHED = 1, 2, 4, 8

# What a run reads of every row of the files table: all but the base itself, which is read
# only when asked for (see `StoredBases`). The CHECKs keep every row well typed, so that
# loading need not look at each value.
Row = tuple[str, str, int, int, int | None, int | None, int]
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY NOT NULL,
        sha256 TEXT NOT NULL CHECK (typeof(sha256) = 'text'),
        base_size INTEGER NOT NULL CHECK (typeof(base_size) = 'integer'),
        deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
        size INTEGER CHECK (size IS NULL OR typeof(size) = 'integer'),
        mtime_ns INTEGER CHECK (mtime_ns IS NULL OR typeof(mtime_ns) = 'integer'),
        flags INTEGER NOT NULL CHECK (typeof(flags) = 'integer'),
        base TEXT NOT NULL CHECK (typeof(base) = 'text')
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS meta (
        name TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL CHECK (typeof(value) = 'text')
    ) WITHOUT ROWID""",
)


class DamagedState(ClaudeSyncError):
    """A row of the store that SQLite read back but that does not parse: written by
    something else than claude-sync."""


class StoredBases:
    """The base versions a store holds, as JSON, read in one query when the first one is
    asked for: a run that changes nothing reads none.

    Only an entry whose base is still the one its row was loaded with asks (see `Entry`),
    and a save never rewrites the base of such a row, so reading them late or early reads
    the same."""

    def __init__(self, store: Path) -> None:
        self._store = store
        self._texts: dict[str, str] | None = None

    def text(self, path: str) -> str:
        if self._texts is None:
            with closing(_connect(self._store)) as db:
                self._texts = dict(db.execute("SELECT path, base FROM files"))
        return self._texts[path]


class Entry:
    """What the state holds for one path: its base (the version this device last pushed
    or adopted), the local file's stat when it matched it, and the flags (see above).

    An entry read from the store parses its base when `base` is first asked for: most of a
    run looks only at the base's hash, size and whether it is a tombstone, which the store
    keeps beside it (`base_sha256`, `base_size`, `base_deleted`).
    """

    __slots__ = (
        "_base",
        "_row_path",
        "_bases",
        "base_sha256",
        "base_size",
        "base_deleted",
        "size",
        "mtime_ns",
        "swept",
        "publish",
        "settled",
        "published",
    )

    def __init__(
        self,
        base: Version,
        size: int | None = None,
        mtime_ns: int | None = None,
        swept: bool = False,
        publish: bool = False,
        settled: bool = False,
    ) -> None:
        # The row whose base this entry's is, as stored: None until it is saved.
        self._row_path: str | None = None
        self._bases: StoredBases | None = None
        self.published = False
        self.base = base
        self.size, self.mtime_ns = size, mtime_ns
        self.swept, self.publish, self.settled = swept, publish, settled

    @classmethod
    def stored(cls, row: Row, bases: StoredBases) -> Entry:
        """The entry of a row of the files table, its base read when asked for."""
        entry = cls.__new__(cls)
        entry._base, entry._bases = None, bases
        path, entry.base_sha256, entry.base_size, deleted, entry.size, entry.mtime_ns, flags = row
        entry._row_path, entry.base_deleted = path, bool(deleted)
        entry.swept, entry.publish = bool(flags & SWEPT), bool(flags & PUBLISH)
        entry.settled, entry.published = bool(flags & SETTLED), bool(flags & PUBLISHED)
        return entry

    @property
    def base(self) -> Version:
        if self._base is None:
            assert self._bases is not None and self._row_path is not None
            path = self._row_path
            try:
                self._base = version_from_json(path, json.loads(self._bases.text(path)))
            except (ValueError, ClaudeSyncError) as error:
                raise DamagedState(
                    f"{STATE_FILE}: the base of {path} is damaged ({error}); move {STATE_FILE} "
                    "aside in the claude-sync home, and the next run rebuilds it by comparing "
                    "hashes"
                ) from None
        return self._base

    @base.setter
    def base(self, version: Version) -> None:
        self._base, self._row_path, self.published = version, None, False
        self.base_sha256, self.base_size = version.sha256, version.size
        self.base_deleted = version.deleted

    def flags(self) -> int:
        return (
            SWEPT * self.swept
            | PUBLISH * self.publish
            | SETTLED * self.settled
            | PUBLISHED * self.published
        )


def _storable_stat(entry: Entry) -> tuple[int | None, int | None]:
    """The entry's stat as the store keeps it: none for an mtime past what SQLite's
    integers hold (beyond the year 2262), so that such a file is read again each run."""
    if entry.mtime_ns is not None and not -(2**63) <= entry.mtime_ns < 2**63:
        return None, None
    return entry.size, entry.mtime_ns


@dataclass
class Changes:
    """What a save writes: whole rows, the stat and flags of rows whose base is unchanged
    (size, mtime_ns, flags, path), and the paths whose rows go."""

    rows: list[tuple]
    stats: list[tuple[int | None, int | None, int, str]]
    removed: list[str]


class Scanned(NamedTuple):
    """Of an entry, what a scan compares a file with: its base's hash, size and whether it
    is a tombstone, and the stat the file had when it last matched the base."""

    base_sha256: str
    base_size: int
    base_deleted: int  # true for a tombstone (0 or 1 as read from a row)
    size: int | None
    mtime_ns: int | None


class Files(MutableMapping[str, Entry]):
    """The state's entries by remote path, over the rows of the store's files table.

    An entry is made from its row when it is first asked for, and kept: whoever holds it
    may change it in place (`entry.swept = True`, `entry.base = ...`). A save writes what
    differs between the entries handed out or set and the rows stored (`changes`): the stat
    and flags of a row whose base is unchanged, a whole row for a new or changed base (or
    an entry put under another path), and deletes the rows of the paths removed.
    Iteration follows the stored paths in order, then the paths added.
    """

    def __init__(self, rows: list[Row] | None = None, bases: StoredBases | None = None) -> None:
        self._stored: dict[str, Row] = {row[0]: row for row in rows or ()}
        self._bases = bases
        # Not read from the store (a new state): a save replaces whatever rows it holds.
        self.replacing = rows is None
        self._entries: dict[str, Entry] = {}
        self._removed: set[str] = set()

    def __getitem__(self, path: str) -> Entry:
        entry = self.get(path)
        if entry is None:
            raise KeyError(path)
        return entry

    def get(self, path: str, default: None = None) -> Entry | None:
        """The entry of `path`, None when there is none (what a scan asks of every file)."""
        entry = self._entries.get(path)
        if entry is None:
            row = self._stored.get(path)
            if row is None or path in self._removed:
                return None
            assert self._bases is not None
            entry = self._entries[path] = Entry.stored(row, self._bases)
        return entry

    def scanned(self, path: str) -> Scanned | None:
        """What a scan compares each file with, None when `path` has no entry: read from its
        row when no entry was made for it, as none is yet when the scan runs."""
        entries = self._entries
        if entries:
            entry = entries.get(path)
            if entry is not None:
                return Scanned(
                    entry.base_sha256,
                    entry.base_size,
                    entry.base_deleted,
                    entry.size,
                    entry.mtime_ns,
                )
        row = self._stored.get(path)
        if row is None or path in self._removed:
            return None
        # The row's columns (`deleted` 0 or 1), made a Scanned without `_make`'s Python-level
        # check of their number: a scan asks this of every file.
        return tuple.__new__(Scanned, row[1:6])

    def stored_rows(self) -> Mapping[str, Row]:
        """The rows as stored, by path, while they are the whole of the entries: no entry
        made (asked for, or set) or removed since the load, as when a scan runs; else none
        (an entry once made stays made for the run). A scan finds an unchanged file equal
        to its row here, with no call (`scanned`) per file."""
        if self._entries or self._removed:
            return {}
        return self._stored

    def __setitem__(self, path: str, entry: Entry) -> None:
        if entry._row_path not in (None, path):
            entry.published = False  # published under the path it came from
        self._entries[path] = entry
        self._removed.discard(path)

    def __delitem__(self, path: str) -> None:
        if path not in self:
            raise KeyError(path)
        self._entries.pop(path, None)
        if path in self._stored:
            self._removed.add(path)

    def __contains__(self, path: object) -> bool:
        return path in self._entries or (path in self._stored and path not in self._removed)

    def __iter__(self) -> Iterator[str]:
        removed = self._removed
        yield from (path for path in self._stored if path not in removed)
        yield from [path for path in self._entries if path not in self._stored]

    def __len__(self) -> int:
        added = sum(path not in self._stored for path in self._entries)
        return len(self._stored) - len(self._removed) + added

    def outside(self, paths: Mapping[str, object]) -> set[str]:
        """The paths of the state that `paths` lacks. A scan's files hold nearly every one
        of them, so the difference is taken in C, not path by path."""
        outside = self._stored.keys() - paths.keys()
        outside -= self._removed
        outside.update(
            path for path in self._entries if path not in self._stored and path not in paths
        )
        return outside

    def unpublished(self) -> list[str]:
        """The paths whose entry is not marked `published`, read from the rows of those no
        entry was made for."""
        paths = [path for path, entry in self._entries.items() if not entry.published]
        paths += [
            path
            for path, row in self._stored.items()
            if not row[6] & PUBLISHED and path not in self._entries and path not in self._removed
        ]
        return paths

    def publishing(self) -> list[str]:
        """The paths whose entry is marked `publish`, read from the rows of those no entry
        was made for."""
        paths = [path for path, entry in self._entries.items() if entry.publish]
        paths += [
            path
            for path, row in self._stored.items()
            if row[6] & PUBLISH and path not in self._entries and path not in self._removed
        ]
        return paths

    def clear(self) -> None:
        self._entries.clear()
        self._removed = set(self._stored)

    @property
    def removing(self) -> bool:
        """Whether entries stored were removed since the load or the last save."""
        return bool(self._removed)

    def changes(self) -> Changes:
        """What a save writes for the store to hold these entries."""
        changes = Changes([], [], sorted(self._removed))
        for path, entry in self._entries.items():
            if entry._row_path == path:
                stat = (*_storable_stat(entry), entry.flags())
                if stat != self._stored[path][4:]:
                    changes.stats.append((*stat, path))
            else:
                base = version_text(entry.base)
                flags, deleted = entry.flags(), int(entry.base_deleted)
                summary = (entry.base_sha256, entry.base_size, deleted)
                changes.rows.append((path, *summary, *_storable_stat(entry), flags, base))
        return changes

    def saved(self, changes: Changes, bases: StoredBases) -> None:
        """Record that the store now holds `changes`."""
        if self.replacing:
            self._stored.clear()
            self._bases, self.replacing = bases, False
        for path in changes.removed:
            del self._stored[path]
        for size, mtime_ns, flags, path in changes.stats:
            self._stored[path] = (*self._stored[path][:4], size, mtime_ns, flags)
        for row in changes.rows:
            path = row[0]
            self._stored[path] = row[:7]
            self._entries[path]._row_path = path
        self._removed.clear()


@dataclass
class State:
    """What this device knows of its files and the remote, kept in state.sqlite between runs."""

    device_id: str
    remote_root: str
    files: Files = field(default_factory=Files)
    last_push: str | None = None
    last_pull: str | None = None
    saved_ns: int = 0  # the file system's time at the last save: when these stats were recorded
    projects: dict[str, Project] = field(default_factory=dict)
    rebuilding: bool = False  # made anew (no store, or an unusable one): see above
    moves: dict[str, Move] = field(default_factory=dict)
    publish_moves: bool = False
    layout: str = ""  # what of this device's layout gave the keys last synced
    numbered: dict[str, str] = field(default_factory=dict)  # remote folder -> `<name>.N`
    journal_seen: dict[str, int] = field(default_factory=dict)  # device -> highest entry
    own_seq: int = 0  # the last entry this home wrote
    recorded: dict[str, list] = field(default_factory=dict)  # see projects.RecordedPaths
    settled_view: dict | None = None  # see above
    settled_conflicts: dict | None = None  # see above

    def settle_own_entry(self, name: str) -> None:
        """Count an entry this device just wrote into the settled view: it names this
        device's bases (or versions it published before, which they are at least), so the
        next pull has nothing of it to decide (see `actions.pull.changed_paths`)."""
        settled, conflicts = self.settled_view, self.settled_conflicts
        if settled is None:
            return
        names = settled["view"].get(self.device_id, [])
        view = {**settled["view"], self.device_id: [*names, name]}
        if conflicts is not None and conflicts["view"] == settled["view"]:
            self.settled_conflicts = {"view": view, "copies": conflicts["copies"]}
        self.settled_view = {"view": view, "config": settled["config"]}


def load_state(home: Path, device_id: str, remote_root: str) -> tuple[State, str | None]:
    """The state of the claude-sync home `home`, and a warning when it was unusable and
    set aside. A state.json there (written by an earlier version, or by one run since) is
    moved into the store first."""
    store = home / STATE_FILE
    legacy = home / LEGACY_FILE
    if legacy.exists():
        state, warning = _load_legacy(legacy, device_id, remote_root)
        if warning is None:  # the stats it recorded keep their time: see saved_ns
            _write(store, state, state.saved_ns)
            legacy.unlink(missing_ok=True)  # another run may have moved it in meanwhile
        return state, warning
    try:
        return _read(store, device_id, remote_root), None
    except FileNotFoundError:
        return State(device_id, remote_root, rebuilding=True), None
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError, ClaudeSyncError):
        aside = store.with_name(f"{STATE_FILE}.corrupt")
        store.replace(aside)
        return State(device_id, remote_root, rebuilding=True), _unreadable(store, aside)


def save_state(home: Path, state: State) -> None:
    """Write what changed in `state` since it was loaded or last saved, in one transaction."""
    _write(home / STATE_FILE, state, _file_system_now(home))


def _unreadable(path: Path, aside: Path) -> str:
    return (
        f"{path} was unreadable (moved to {aside.name}); rebuilding it by comparing "
        "hashes: a copy older than the remote's version is kept in trash/, a newer one "
        "as a conflict copy"
    )


def _file_system_now(folder: Path) -> int:
    """The time by the clock that stamps files in `folder` (coarser than, and possibly
    behind, time.time_ns()): what the racily-clean rule compares mtimes with."""
    import tempfile  # a save's only: a run with nothing to save never imports it

    with tempfile.TemporaryFile(dir=folder) as probe:
        return os.fstat(probe.fileno()).st_mtime_ns


def _connect(store: Path) -> sqlite3.Connection:
    """A connection to an existing store (never creates one), in autocommit mode: each
    transaction is begun and committed explicitly."""
    uri = f"{store.absolute().as_uri()}?mode=rw"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _read(store: Path, device_id: str, remote_root: str) -> State:
    if not store.exists():
        raise FileNotFoundError(store)
    with closing(_connect(store)) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and db.execute("SELECT 1 FROM sqlite_master").fetchone() is None:
            raise FileNotFoundError(store)  # empty: the first save was cut short
        if version != STATE_VERSION:
            raise ValueError("unknown version")
        meta = {name: json.loads(value) for name, value in db.execute("SELECT * FROM meta")}
        if meta["device_id"] != device_id or meta["remote_root"] != remote_root:
            return State(device_id, remote_root, rebuilding=True)  # replaced at the next save
        columns = "path, sha256, base_size, deleted, size, mtime_ns, flags"  # all but the base
        rows = db.execute(f"SELECT {columns} FROM files ORDER BY path").fetchall()
    return State(
        device_id,
        remote_root,
        Files(rows, StoredBases(store)),
        _optional_text(meta["last_push"]),
        _optional_text(meta["last_pull"]),
        _integer(meta["saved_ns"]),
        projects_from_json(meta["projects"]),
        _flag(meta["rebuilding"]),
        moves_from_json(meta["moves"]),
        _flag(meta["publish_moves"]),
        _text(meta["layout"]),
        _numbered(meta["numbered"]),
        _journal_seen(meta["journal_seen"]),
        _integer(meta["own_seq"]),
        _recorded(meta["recorded"]),
        _settled_view(meta.get("settled_view")),
        _settled_conflicts(meta.get("settled_conflicts")),
    )


def _write(store: Path, state: State, saved_ns: int) -> None:
    changes = state.files.changes()
    if changes.removed:
        state.settled_view = None  # a path with no entry is no longer settled: see above
    meta = {
        "device_id": state.device_id,
        "remote_root": state.remote_root,
        "saved_ns": saved_ns,
        "last_push": state.last_push,
        "last_pull": state.last_pull,
        "projects": projects_to_json(state.projects),
        "rebuilding": state.rebuilding,
        "moves": moves_to_json(state.moves),
        "publish_moves": state.publish_moves,
        "layout": state.layout,
        "numbered": state.numbered,
        "journal_seen": state.journal_seen,
        "own_seq": state.own_seq,
        "recorded": state.recorded,
        "settled_view": state.settled_view,
        "settled_conflicts": state.settled_conflicts,
    }
    # Made here, so that it is private from the start (SQLite gives its journal the same mode).
    os.close(os.open(store, os.O_WRONLY | os.O_CREAT, 0o600))
    with closing(_connect(store)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {STATE_VERSION}")
            if state.files.replacing:
                db.execute("DELETE FROM files")
            db.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in changes.removed))
            db.executemany(
                "UPDATE files SET size = ?, mtime_ns = ?, flags = ? WHERE path = ?", changes.stats
            )
            db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", changes.rows
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                ((name, json.dumps(value, separators=(",", ":"))) for name, value in meta.items()),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    state.files.saved(changes, StoredBases(store))


def _load_legacy(path: Path, device_id: str, remote_root: str) -> tuple[State, str | None]:
    """The state a state.json holds, and a warning when it was unusable and set aside."""
    try:
        with open(path, "rb") as handle:
            saved_ns = os.fstat(handle.fileno()).st_mtime_ns
            document = json.loads(handle.read())
        if document.get("version") != LEGACY_VERSION:
            raise ValueError("unknown version")
        if document.get("device_id") != device_id or document.get("remote_root") != remote_root:
            return State(device_id, remote_root, rebuilding=True), None
        files = Files()
        for name, raw in document["files"].items():
            files[name] = Entry(
                base=version_from_json(name, raw["base"]),
                size=raw.get("size"),
                mtime_ns=raw.get("mtime_ns"),
                swept=bool(raw.get("swept", False)),
                publish=bool(raw.get("publish", False)),
                settled=bool(raw.get("settled", False)),
            )
        return State(
            device_id,
            remote_root,
            files,
            document.get("last_push"),
            document.get("last_pull"),
            saved_ns,
            projects_from_json(document.get("projects", {})),
            bool(document.get("rebuilding", False)),
            moves_from_json(document.get("moves", {})),
            bool(document.get("publish_moves", False)),
            str(document.get("layout", "")),
            _numbered(document.get("numbered", {})),
            _journal_seen(document.get("journal_seen", {})),
            int(document.get("own_seq", 0)),
        ), None
    except (ValueError, KeyError, TypeError, AttributeError, ClaudeSyncError, OSError):
        aside = path.with_name(f"{LEGACY_FILE}.corrupt")
        path.replace(aside)
        return State(device_id, remote_root, rebuilding=True), _unreadable(path, aside)


def _numbered(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "/" not in k + v for k, v in raw.items()
    ):
        raise ValueError("numbered")
    return dict(raw)


def _journal_seen(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in raw.items()
    ):
        raise ValueError("journal_seen")
    return dict(raw)


def _recorded(raw: object) -> dict[str, list]:
    if not isinstance(raw, dict) or not all(
        isinstance(name, str)
        and isinstance(value, list)
        and len(value) == 4
        and all(isinstance(number, int) for number in value[:3])
        and (value[3] is None or isinstance(value[3], str))
        for name, value in raw.items()
    ):
        raise ValueError("recorded")
    return raw


def _settled_view(raw: object) -> dict | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or set(raw) != {"view", "config"}
        or not isinstance(raw["config"], str)
        or not _is_view(raw["view"])
    ):
        raise ValueError("settled_view")
    return raw


def _settled_conflicts(raw: object) -> dict | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or set(raw) != {"view", "copies"}
        or not _is_view(raw["view"])
        or not isinstance(raw["copies"], list)
        or not all(isinstance(copy, str) for copy in raw["copies"])
    ):
        raise ValueError("settled_conflicts")
    return raw


def _is_view(raw: object) -> bool:
    """Whether raw is a view as the state keeps it: each device's entry names."""
    return isinstance(raw, dict) and all(
        isinstance(names, list) and all(isinstance(name, str) for name in names)
        for names in raw.values()
    )


def _integer(raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError("not an integer")
    return raw


def _flag(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise ValueError("not true or false")
    return raw


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError("not a string")
    return raw


def _optional_text(raw: object) -> str | None:
    return None if raw is None else _text(raw)
