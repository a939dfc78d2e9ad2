"""migrate: turn a format-1 remote into format 2, in place, from any device.

Steps, each safe to run again after an interruption:

1. Mirror the marker, the manifests and the journal (a new folder: manifests change in
   place, so a mirror of them is never trusted twice).
2. For each device's manifest whose device has no journal entry yet, write entry 1 of its
   journal: a snapshot of the manifest, as that device's view.
3. Write the format-2 marker, keeping format 1's fixed salt (the passphrase must go on
   giving the key the objects are encrypted to). From here on, format-2 clients read the
   journal and format-1 clients refuse, asking to be upgraded.
4. Delete manifests/.

A format-1 client that pushed between steps 2 and 3 loses nothing: its state holds what it
pushed, and its next push as a format-2 client publishes what its snapshot lacks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

from ..crypto import decrypt_bytes
from ..errors import RemoteFormatError
from ..files import private_folder
from ..journal import SNAPSHOT, JournalEntry, entry_seq
from ..keys import KDF_SALT
from ..manifest import MANIFEST_NAME, decode_manifest
from ..remote import FORMAT, JOURNAL, MANIFESTS, Marker
from ..remote_view import write_entry
from ..workspace import Workspace

MIGRATED_INSTANCE = "migrated"  # the instance of the entries a migration writes


@dataclass
class Migration:
    devices: int = 0  # journals started from a manifest by this run
    already: bool = False  # the remote was in format 2 and had no manifests left


def migrate(ws: Workspace, say: Callable[[str], None]) -> Migration:
    result = Migration()
    folder = ws.cache / "migrate"
    shutil.rmtree(folder, ignore_errors=True)
    marker = ws.remote.mirror_metadata(folder, manifests=True)
    manifests = folder / MANIFESTS
    names = sorted(p.name for p in manifests.glob("*.age")) if manifests.is_dir() else []
    if marker.format == FORMAT:
        if names:
            ws.remote.delete_manifests()
            say(f"removed {MANIFESTS}/, left by an interrupted migration")
        result.already = not names
        shutil.rmtree(folder, ignore_errors=True)
        return result
    ws.remote.check_key(ws.identity)
    staging = ws.staging / "migrate"
    shutil.rmtree(staging, ignore_errors=True)
    private_folder(staging)
    try:
        for name in names:
            if not MANIFEST_NAME.match(name):
                say(f"{MANIFESTS}/{name} is not a manifest claude-sync wrote: left out")
                continue
            device_id = name[: -len(".age")]
            journal = folder / JOURNAL / device_id
            if journal.is_dir() and any(entry_seq(p.name) for p in journal.iterdir()):
                continue  # written by an interrupted run
            try:
                manifest = decode_manifest(
                    decrypt_bytes((manifests / name).read_bytes(), ws.identity), device_id
                )
            except RemoteFormatError as error:
                raise RemoteFormatError(f"{MANIFESTS}/{name}: {error}: nothing migrated") from None
            entry = JournalEntry(
                device_id,
                manifest.device_name,
                1,
                SNAPSHOT,
                manifest.updated,
                MIGRATED_INSTANCE,
                0,
                manifest.files,
                manifest.projects,
                manifest.moves,
            )
            write_entry(ws, entry, staging)
            result.devices += 1
            say(f"{manifest.device_name}: {len(manifest.files)} paths into {JOURNAL}/{device_id}/")
        ws.remote.write_marker(Marker(FORMAT, KDF_SALT))
        ws.remote.delete_manifests()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    return result
