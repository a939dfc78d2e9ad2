"""The remote as a run sees it: every device's view, read from the journal.

One rclone call mirrors the marker and the encrypted journal into cache/remote (an entry
already there is never fetched again: names are unique and entries immutable); a remote in
a folder on this machine is read where it is, no rclone started. Each new entry is
decrypted once, and its plaintext kept in cache/journal. Every entry is checked (its MAC,
its name) when it is decoded, and each device's view made from its entries kept in
cache/views.sqlite (see `view_cache`): a run whose journal has no new entries decodes none.
An entry this device writes is put into both caches as it is sent, so a device never
downloads what it wrote itself.
"""

from __future__ import annotations

import operator
import os
import shutil
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import crypto
from .errors import ClaudeSyncError, RemoteFormatError
from .files import private_folder, write_private
from .journal import (
    DELTA,
    SNAPSHOT,
    JournalEntry,
    decode_entry,
    device_view,
    encode_entry,
    entry_name,
    entry_seq,
)
from .manifest import (
    DEVICE_ID,
    Manifest,
    moves_from_json,
    moves_to_json,
    projects_from_json,
    projects_to_json,
)
from .remote import JOURNAL, check_current
from .versions import Version
from .view_cache import VIEWS_FILE, Held, StoredFiles, ViewCache, plaintext_stat
from .workspace import Workspace

DECODED = "journal"  # cache/journal/<device>/<entry>.json: entries' plaintexts


@dataclass(frozen=True)
class EntryInfo:
    """What a run needs of an entry beyond its paths: its place, its kind, the home
    instance that wrote it, and how many paths it names."""

    seq: int
    kind: str  # DELTA or SNAPSHOT
    instance_id: str
    instance_created: int
    count: int

    @classmethod
    def of(cls, entry: JournalEntry) -> EntryInfo:
        return cls(
            entry.seq, entry.kind, entry.instance_id, entry.instance_created, len(entry.files)
        )

    def row(self) -> list:
        """As the view cache's header keeps it (see `Held`)."""
        return [self.seq, self.kind, self.instance_id, self.instance_created, self.count]


@dataclass
class RemoteView:
    manifests: dict[str, Manifest]  # device id -> that device's view
    entries: dict[str, list[EntryInfo]] = field(default_factory=dict)  # by seq
    names: dict[str, list[str]] = field(default_factory=dict)  # device -> entry names
    strays: list[str] = field(default_factory=list)  # names in journal/ that are not ours
    # (device, entry name) -> the paths it names, for the entries decoded in this run
    decoded: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    cache: ViewCache | None = None  # where the paths of the other entries are kept

    def versions(self, paths: Collection[str] | None = None) -> dict[str, list[Version]]:
        """Every view's version of each path, or of `paths` alone: a push of a few files
        parses a few versions, not the whole remote's."""
        by_path: dict[str, list[Version]] = {}
        for manifest in self.manifests.values():
            for path, version in _items(manifest.files, paths):
                by_path.setdefault(path, []).append(version)
        return by_path

    def device_name(self, device_id: str) -> str:
        manifest = self.manifests.get(device_id)
        return manifest.device_name if manifest else device_id

    def known_segments(self, paths: Collection[str] | None = None) -> set[str]:
        """The SHA-256 of every segment a view names (for `paths` alone, when given):
        objects already on the remote."""
        return {
            segment.sha256
            for manifest in self.manifests.values()
            for _, version in _items(manifest.files, paths)
            for segment in version.segments
        }

    def last_seq(self, device_id: str) -> int:
        """The highest sequence number of `device_id`'s entries (0: none)."""
        entries = self.entries.get(device_id)
        return entries[-1].seq if entries else 0

    def entry_paths(self, device_id: str, name: str) -> list[str] | None:
        """The paths entry `name` of `device_id` names; None when unknown here."""
        paths = self.decoded.get((device_id, name))
        if paths is None and self.cache is not None:
            paths = self.cache.entry_paths(device_id, name)
        return paths


def _items(
    files: Mapping[str, Version], paths: Collection[str] | None
) -> Iterable[tuple[str, Version]]:
    if paths is None:
        return files.items()
    found = ((path, files.get(path)) for path in paths)
    return [(path, version) for path, version in found if version is not None]


def fetch_remote_view(ws: Workspace, problems: list[str] | None = None) -> RemoteView:
    """Every device's view. An entry that is not authentic raises. A device whose entries
    are those of its view kept in cache/views.sqlite (see `view_cache`) is read from there,
    only its new entries decoded. With `problems` (for verify), every entry is fetched and
    checked anew, caches aside, and one that is not authentic is named there, its device
    left out."""
    fresh = problems is not None
    mirror = ws.cache / "verify" if fresh else ws.remote_mirror
    if fresh:
        shutil.rmtree(mirror, ignore_errors=True)
    marker, source = ws.remote.metadata(mirror)
    check_current(marker)
    decoded = ws.staging / "verify-journal" if fresh else ws.cache / DECODED
    cache = None if fresh else ViewCache(ws.cache / VIEWS_FILE)
    for attempt in range(1, READ_TRIES + 1):
        view, found = RemoteView({}, cache=cache), []
        try:
            _read_journal(ws, view, source / JOURNAL, decoded, found if fresh else None)
        except FileNotFoundError:
            if source == mirror:
                raise
            continue
        # A device's entries always begin with a snapshot (it deletes the entries below a
        # new one only once that is written); a listing without one saw the deletions and
        # not the new snapshot. Listed again, or, the last time, taken as it is, as from
        # a mirror.
        if (
            source == mirror
            or attempt == READ_TRIES
            or all(map(_has_snapshot, view.entries.values()))
        ):
            break
    else:
        raise ClaudeSyncError(
            f"the journal in {source} changed while it was read, {READ_TRIES} times: run again"
        )
    if problems is not None:
        problems += found
    if fresh:
        shutil.rmtree(mirror, ignore_errors=True)
        shutil.rmtree(decoded, ignore_errors=True)
    else:
        _forget_cached(decoded, view.names)
        assert view.cache is not None
        view.cache.keep_only(set(view.names))
    return view


READ_TRIES = 3  # listings of a journal read in place (see `Remote.metadata`)


def _has_snapshot(entries: list[EntryInfo]) -> bool:
    return any(entry.kind == SNAPSHOT for entry in entries)


def _read_journal(
    ws: Workspace, view: RemoteView, journal: Path, decoded: Path, problems: list[str] | None
) -> None:
    """Read every device's entries in `journal` into `view`. Only regular files count: a
    link or a FIFO in a remote read in place is a stray, as rclone would not copy it. An
    entry gone since the listing raises FileNotFoundError (the caller lists again)."""
    for folder in _listing(journal):
        if not folder.is_dir(follow_symlinks=False) or not DEVICE_ID.match(folder.name):
            view.strays.append(f"{JOURNAL}/{folder.name}")
            continue
        device_id, files = folder.name, []
        for file in _listing(Path(folder.path)):
            if entry_seq(file.name) is None or not _regular(file):
                view.strays.append(f"{JOURNAL}/{device_id}/{file.name}")
                continue
            files.append(Path(file.path))
        if not files:
            continue
        try:
            _read_device(ws, view, device_id, files, decoded / device_id)
        except RemoteFormatError as error:
            if problems is None:
                raise
            problems.append(str(error))


def _regular(file: os.DirEntry[str]) -> bool:
    """By lstat, not by the listing's file type: some file systems give none, and an entry
    deleted since the listing must raise FileNotFoundError, not pass for a stray."""
    return stat.S_ISREG(file.stat(follow_symlinks=False).st_mode)


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    """What `folder` holds, sorted by name; nothing when it does not exist."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=operator.attrgetter("name"))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ClaudeSyncError(f"cannot read {folder}: {error.strerror}") from None


def _read_device(
    ws: Workspace, view: RemoteView, device_id: str, files: list[Path], decoded: Path
) -> None:
    """Add `device_id`'s view, from its entry `files` in order, to `view`: decoding only
    the entries its kept view (if any) lacks, and keeping the view it makes."""
    names = [file.name for file in files]
    held = view.cache.held(device_id) if view.cache is not None else None
    if held is not None and (
        held.names != names[: len(held.names)]
        or any(held.stats[name] != plaintext_stat(decoded / f"{name}.json") for name in held.names)
    ):
        held = None  # another journal, or a plaintext changed since it was checked
    kept = len(held.names) if held is not None else 0
    entries = [
        _load_entry(ws, file, decoded / f"{file.name}.json", device_id, entry_seq(file.name))
        for file in files[kept:]
    ]
    for file, entry in zip(files[kept:], entries, strict=True):
        view.decoded[device_id, file.name] = list(entry.files)
    infos = [EntryInfo(*info) for info in held.entries] if held is not None else []
    infos += [EntryInfo.of(entry) for entry in entries]
    view.entries[device_id], view.names[device_id] = infos, names
    on_top = held is not None and all(entry.kind == DELTA for entry in entries)
    if on_top:
        assert held is not None and view.cache is not None
        changed: dict[str, Version] = {}
        for entry in entries:
            changed.update(entry.files)
        manifest = Manifest(
            device_id,
            entries[-1].device_name if entries else held.device_name,
            entries[-1].updated if entries else held.updated,
            StoredFiles(view.cache, device_id, changed),
            projects_from_json(held.projects),
            moves_from_json(held.moves),
        )
        for entry in entries:
            manifest.projects.update(entry.projects)
            manifest.moves.update(entry.moves)
        if not entries:
            view.manifests[device_id] = manifest
            return
    else:
        # Below the newest snapshot (decoded now: the kept view is older) nothing counts.
        manifest = device_view(entries)
        assert manifest is not None
        changed = manifest.files
    view.manifests[device_id] = manifest
    if view.cache is not None:
        stats = {name: plaintext_stat(decoded / f"{name}.json") for name in names}
        header = Held(
            names,
            [info.row() for info in infos],
            stats,
            manifest.device_name,
            manifest.updated,
            projects_to_json(manifest.projects),
            moves_to_json(manifest.moves),
        )
        paths = {name: view.decoded[device_id, name] for name in names[kept:]}
        view.cache.put(device_id, header, changed, paths, whole=not on_top)


def _load_entry(
    ws: Workspace, encrypted: Path, cached: Path, device_id: str, seq: int | None
) -> JournalEntry:
    assert seq is not None
    where = f"{JOURNAL}/{device_id}/{encrypted.name}"
    if cached.exists():
        data = cached.read_bytes()
    else:
        try:
            data = crypto.decrypt_bytes(_read_encrypted(encrypted), ws.identity)
        except RemoteFormatError:
            raise RemoteFormatError(
                f"{where} cannot be decrypted with this key (encrypted to a different key, "
                "or corrupted): refused"
            ) from None
    try:
        entry = decode_entry(data, ws.metadata_key, device_id, seq)
    except RemoteFormatError as error:
        raise RemoteFormatError(f"{where}: {error}") from None
    if not cached.exists():
        private_folder(cached.parent)
        write_private(cached, data.decode())
    return entry


def _read_encrypted(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ClaudeSyncError(f"cannot read {file}: {error.strerror}") from None


def _forget_cached(decoded: Path, names: dict[str, list[str]]) -> None:
    """Drop the plaintext of entries no longer on the remote (deleted below a snapshot)."""
    if not decoded.is_dir():
        return
    for folder in decoded.iterdir():
        keep = {f"{name}.json" for name in names.get(folder.name, [])}
        for file in folder.iterdir():
            if file.name not in keep:
                file.unlink()


def write_entry(ws: Workspace, entry: JournalEntry, staging: Path) -> str:
    """Encrypt and send one entry under a new name, and keep it in both caches; its name."""
    data = encode_entry(entry, ws.metadata_key)
    name = entry_name(entry.seq)
    encrypted = staging / name
    encrypted.write_bytes(crypto.encrypt_bytes(data, ws.recipient))
    ws.remote.upload_entry(entry.device_id, name, encrypted)
    if ws.remote.folder_here is None:  # else the journal is read where it is
        mirrored = ws.remote_mirror / JOURNAL / entry.device_id / name
        private_folder(mirrored.parent)
        shutil.copyfile(encrypted, mirrored)
    cached = _plaintext(ws, entry.device_id, name)
    private_folder(cached.parent)
    write_private(cached, data.decode())
    return name


def _plaintext(ws: Workspace, device_id: str, name: str) -> Path:
    """Where the decrypted plaintext of entry `name` of `device_id` is kept."""
    return ws.cache / DECODED / device_id / f"{name}.json"


def keep_written(ws: Workspace, view: RemoteView, entry: JournalEntry, name: str) -> None:
    """Keep `entry`, which this device just wrote as `name`, in the view cache, so that the
    next run decodes none of this device's own entries (a snapshot of 100,000 paths costs
    seconds and hundreds of MB to decode). A snapshot is kept as the device's whole view,
    once its entries below it are deleted; a delta goes on top of the kept view only when
    that is the view of exactly the entries `view` read. Otherwise nothing is kept, and the
    next run decodes the entries the cache lacks, as for any device."""
    if view.cache is None:
        return
    device = entry.device_id
    stat = plaintext_stat(_plaintext(ws, device, name))
    projects, moves = entry.projects, entry.moves
    held = Held([], [], {}, "", "", {}, {})
    if entry.kind == DELTA:
        kept = view.cache.held(device)
        if kept is None or kept.names != view.names.get(device):
            return
        held = kept
        projects = {**projects_from_json(kept.projects), **entry.projects}
        moves = {**moves_from_json(kept.moves), **entry.moves}
    header = Held(
        [*held.names, name],
        [*held.entries, EntryInfo.of(entry).row()],
        {**held.stats, name: stat},
        entry.device_name,
        entry.updated,
        projects_to_json(projects),
        moves_to_json(moves),
    )
    whole = entry.kind != DELTA
    view.cache.put(device, header, entry.files, {name: list(entry.files)}, whole=whole)


def delete_entries(ws: Workspace, device_id: str, names: list[str], staging: Path) -> None:
    """Delete entries of `device_id` from the remote and from both caches."""
    if not names:
        return
    ws.remote.delete_entries(device_id, names, staging)
    for name in names:
        (ws.remote_mirror / JOURNAL / device_id / name).unlink(missing_ok=True)
        _plaintext(ws, device_id, name).unlink(missing_ok=True)
