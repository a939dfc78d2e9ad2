"""The remote as a run sees it: every device's view, read from the journal.

One rclone call mirrors the marker and the encrypted journal into cache/remote (an entry
already there is never fetched again: names are unique and entries immutable); each new
entry is decrypted once, and its plaintext kept in cache/journal. Every entry is checked
(its MAC, its name) each time it is read. An entry this device writes is put into both
caches as it is sent, so a device never downloads what it wrote itself.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import crypto
from .errors import RemoteFormatError
from .files import private_folder, write_private
from .journal import (
    JOURNAL,
    JournalEntry,
    decode_entry,
    device_view,
    encode_entry,
    entry_name,
    entry_seq,
)
from .manifest import DEVICE_ID, Manifest
from .remote import check_current
from .versions import Version
from .workspace import Workspace


@dataclass
class RemoteView:
    manifests: dict[str, Manifest]  # device id -> that device's view
    entries: dict[str, list[JournalEntry]] = field(default_factory=dict)  # by seq
    names: dict[str, list[str]] = field(default_factory=dict)  # device -> entry names
    strays: list[str] = field(default_factory=list)  # names in journal/ that are not ours

    def versions(self) -> dict[str, list[Version]]:
        by_path: dict[str, list[Version]] = {}
        for manifest in self.manifests.values():
            for path, version in manifest.files.items():
                by_path.setdefault(path, []).append(version)
        return by_path

    def device_name(self, device_id: str) -> str:
        manifest = self.manifests.get(device_id)
        return manifest.device_name if manifest else device_id

    def known_segments(self) -> set[str]:
        """The SHA-256 of every segment a view names: objects already on the remote."""
        return {
            segment.sha256
            for manifest in self.manifests.values()
            for version in manifest.files.values()
            for segment in version.segments
        }

    def last_seq(self, device_id: str) -> int:
        """The highest sequence number of `device_id`'s entries (0: none)."""
        entries = self.entries.get(device_id)
        return entries[-1].seq if entries else 0


def fetch_remote_view(ws: Workspace, problems: list[str] | None = None) -> RemoteView:
    """Every device's view. An entry that is not authentic raises. With `problems` (for
    verify), every entry is fetched and checked anew, caches aside, and one that is not
    authentic is named there, its device left out."""
    fresh = problems is not None
    mirror = ws.cache / ("verify" if fresh else "remote")
    if fresh:
        shutil.rmtree(mirror, ignore_errors=True)
    check_current(ws.remote.mirror_metadata(mirror))
    decoded = ws.staging / "verify-journal" if fresh else ws.cache / "journal"
    view = RemoteView({})
    journal = mirror / JOURNAL
    folders = sorted(journal.iterdir()) if journal.is_dir() else []
    for folder in folders:
        if not folder.is_dir() or not DEVICE_ID.match(folder.name):
            view.strays.append(f"{JOURNAL}/{folder.name}")
            continue
        device_id, entries, names = folder.name, [], []
        for file in sorted(folder.iterdir()):
            seq = entry_seq(file.name)
            if seq is None or not file.is_file():
                view.strays.append(f"{JOURNAL}/{device_id}/{file.name}")
                continue
            cached = decoded / device_id / f"{file.name}.json"
            try:
                entries.append(_load_entry(ws, file, cached, device_id, seq))
            except RemoteFormatError as error:
                if problems is None:
                    raise
                problems.append(str(error))
                entries = []
                break
            names.append(file.name)
        if entries:
            view.entries[device_id], view.names[device_id] = entries, names
            manifest = device_view(entries)
            assert manifest is not None
            view.manifests[device_id] = manifest
    if fresh:
        shutil.rmtree(mirror, ignore_errors=True)
        shutil.rmtree(decoded, ignore_errors=True)
    else:
        _forget_cached(decoded, view.names)
    return view


def _load_entry(
    ws: Workspace, encrypted: Path, cached: Path, device_id: str, seq: int
) -> JournalEntry:
    where = f"{JOURNAL}/{device_id}/{encrypted.name}"
    if cached.exists():
        data = cached.read_bytes()
    else:
        try:
            data = crypto.decrypt_bytes(encrypted.read_bytes(), ws.identity)
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
    mirrored = ws.cache / "remote" / JOURNAL / entry.device_id / name
    private_folder(mirrored.parent)
    shutil.copyfile(encrypted, mirrored)
    cached = ws.cache / "journal" / entry.device_id / f"{name}.json"
    private_folder(cached.parent)
    write_private(cached, data.decode())
    return name


def delete_entries(ws: Workspace, device_id: str, names: list[str], staging: Path) -> None:
    """Delete entries of `device_id` from the remote and from both caches."""
    if not names:
        return
    ws.remote.delete_entries(device_id, names, staging)
    for name in names:
        (ws.cache / "remote" / JOURNAL / device_id / name).unlink(missing_ok=True)
        (ws.cache / "journal" / device_id / f"{name}.json").unlink(missing_ok=True)
