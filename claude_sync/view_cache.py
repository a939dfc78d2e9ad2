"""cache/views.sqlite: each device's view as decoded from its journal entries, kept so that
a run whose journal has no new entries decodes none, and reads only the versions it asks for.

    devices                        -- one row per device whose view is kept
        device TEXT PRIMARY KEY
        header TEXT                -- JSON: see `Held`
    files                          -- that view's versions
        device, path TEXT          -- primary key
        version TEXT               -- the version as JSON, as a journal entry writes it
    entries                        -- the paths each entry of a kept view names
        device, name TEXT          -- primary key
        paths TEXT                 -- JSON list

A device's rows always hold `device_view` of the entries its header names, written in one
transaction once each of them passed `journal.decode_entry` (its MAC, its name, every
field), or, for this device's own entries, as its push wrote them (`keep_written`). An
entry is immutable and its name never reused, so the names are the view's identity. The
header also keeps the stat of each entry's decrypted plaintext in
cache/journal (with its ctime, which no one sets back): a plaintext changed since it was
checked is decoded, and checked, again. The cache is as private as the state beside it in
the claude-sync home, and as trusted; `verify` never reads it. An unreadable cache is
removed and made anew: everything in it can be decoded again.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .errors import ClaudeSyncError
from .files import private_folder
from .manifest import version_from_json, version_text
from .versions import Version

VIEWS_FILE = "views.sqlite"
SCHEMA_VERSION = 1
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS devices (
        device TEXT PRIMARY KEY NOT NULL, header TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS files (
        device TEXT NOT NULL, path TEXT NOT NULL, version TEXT NOT NULL,
        PRIMARY KEY (device, path)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS entries (
        device TEXT NOT NULL, name TEXT NOT NULL, paths TEXT NOT NULL,
        PRIMARY KEY (device, name)) WITHOUT ROWID""",
)

Stat = list[int]  # size, mtime_ns, ctime_ns, inode of an entry's plaintext


def plaintext_stat(file: Path) -> Stat | None:
    """What tells a cached plaintext apart from one written over it; None when missing."""
    try:
        info = file.stat()
    except FileNotFoundError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


@dataclass
class Held:
    """A kept view's header: its entries' names (in order), what each is (seq, kind,
    instance id, instance created, how many paths it names), their plaintexts' stats, and
    the view's device name, time, project table and moves (as journal entries write them)."""

    names: list[str]
    entries: list[list]
    stats: dict[str, Stat | None]
    device_name: str
    updated: str
    projects: dict
    moves: dict


class StoredFiles(Mapping[str, Version]):
    """A kept view's versions by path, each parsed only when asked for: a run that plans
    over a few paths reads and parses a few versions, one that goes through them all
    reads them in one query."""

    def __init__(self, cache: ViewCache, device: str, changed: dict[str, Version]) -> None:
        self._cache, self._device = cache, device
        self._texts: dict[str, str] | None = None
        self._parsed = dict(changed)  # decoded in this run, on top of what is kept

    def _all(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = self._cache.texts(self._device)
        return self._texts

    def _text(self, path: str) -> str | None:
        if self._texts is not None:
            return self._texts.get(path)
        return self._cache.text(self._device, path)

    def __getitem__(self, path: str) -> Version:
        version = self._parsed.get(path)
        if version is None:
            text = self._text(path)
            if text is None:
                raise KeyError(path)
            try:
                version = version_from_json(path, json.loads(text))
            except (ValueError, ClaudeSyncError) as error:
                self._cache.file.unlink(missing_ok=True)  # the next run decodes anew
                raise ClaudeSyncError(
                    f"cache/{VIEWS_FILE}: the version of {path} is damaged ({error}); "
                    "removed: run again, and the views are decoded anew from the journal"
                ) from None
            self._parsed[path] = version
        return version

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and (path in self._parsed or self._text(path) is not None)

    def __iter__(self) -> Iterator[str]:
        yield from self._all()
        yield from (path for path in self._parsed if path not in self._all())

    def __len__(self) -> int:
        return len(self._all()) + sum(path not in self._all() for path in self._parsed)


class ViewCache:
    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            file.unlink(missing_ok=True)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        private_folder(self.file.parent)
        os.close(os.open(self.file, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.file, isolation_level=None)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                for table in ("devices", "files", "entries"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def held(self, device: str) -> Held | None:
        """The header of `device`'s kept view; None when none is kept, or when what is kept
        is not a header claude-sync wrote (the view is then decoded anew and kept whole)."""
        row = self._db.execute("SELECT header FROM devices WHERE device = ?", (device,)).fetchone()
        try:
            held = Held(**json.loads(row[0])) if row else None
        except (ValueError, TypeError):
            return None
        if held is not None and not (
            isinstance(held.names, list)
            and isinstance(held.entries, list)
            and isinstance(held.stats, dict)
            and len(held.entries) == len(held.names)
            and all(isinstance(entry, list) and len(entry) == 5 for entry in held.entries)
        ):
            return None
        return held

    def texts(self, device: str) -> dict[str, str]:
        return dict(self._db.execute("SELECT path, version FROM files WHERE device = ?", (device,)))

    def text(self, device: str, path: str) -> str | None:
        row = self._db.execute(
            "SELECT version FROM files WHERE device = ? AND path = ?", (device, path)
        ).fetchone()
        return row[0] if row else None

    def entry_paths(self, device: str, name: str) -> list[str] | None:
        """The paths entry `name` names; None when not kept (or not as claude-sync keeps
        them): the caller then takes every path for changed."""
        row = self._db.execute(
            "SELECT paths FROM entries WHERE device = ? AND name = ?", (device, name)
        ).fetchone()
        try:
            paths = json.loads(row[0]) if row else None
        except ValueError:
            return None
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            return None
        return paths

    def put(
        self,
        device: str,
        held: Held,
        files: Mapping[str, Version],
        entry_paths: dict[str, list[str]],
        whole: bool,
    ) -> None:
        """Keep `held` and the view `files` (`whole`: they replace what is kept; else
        they are its changed paths), and the paths of the entries decoded."""
        with closing(self._db.cursor()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if whole:
                    db.execute("DELETE FROM files WHERE device = ?", (device,))
                    db.execute("DELETE FROM entries WHERE device = ?", (device,))
                else:
                    db.executemany(
                        "DELETE FROM entries WHERE device = ? AND name = ?",
                        ((device, name) for name in entry_paths),
                    )
                db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?)",
                    ((device, path, version_text(v)) for path, v in files.items()),
                )
                db.executemany(
                    "INSERT INTO entries VALUES (?, ?, ?)",
                    ((device, name, json.dumps(paths)) for name, paths in entry_paths.items()),
                )
                db.execute(
                    "INSERT OR REPLACE INTO devices VALUES (?, ?)",
                    (device, json.dumps(held.__dict__, separators=(",", ":"))),
                )
                db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def keep_only(self, devices: set[str]) -> None:
        """Forget the views of devices with no entries left."""
        gone = [(d,) for (d,) in self._db.execute("SELECT device FROM devices") if d not in devices]
        if gone:
            self._db.execute("BEGIN IMMEDIATE")
            for table in ("devices", "files", "entries"):
                self._db.executemany(f"DELETE FROM {table} WHERE device = ?", gone)
            self._db.execute("COMMIT")
