"""A device's view of the synced tree, and the version entries journal entries carry.

A version, as every journal entry (see `journal`) and the state (see `state`) write it:

    {"sha256": "<hex>", "size": 123, "mtime_ns": 1700000000000000000,
     "vector": {"<device id>": 3}, "device": "<id that made this version>",
     "deleted": false, "segments": [["<hex>", 100], ["<hex>", 23]], "mode": 384}

The file is the concatenation of its segments (objects); a tombstone has deleted: true, no
segments, sha256 "" and size 0. `mode` is the file's permission bits where it was written
(st_mode & 0o777; 384 is 0600), which a pull gives a file it creates; a tombstone has none,
and an entry written before modes were recorded has none either (unknown: a pull creates
the file as it always did, 0600). A change of mode alone is no new version: the mode
travels with the next change of bytes.

A view (`Manifest`) is one device's versions by remote path, with its project table (the
key and the recorded path of each project folder its files lie in: see `projects`) and the
moves of project folders it knows of (see `moves`). Format 1 kept each device's view whole
in `manifests/<device-id>.age`:

    {"format": 1, "device": {"id": "9f2c...", "name": "laptop"}, "updated": "<iso>",
     "stamp": "<hex>", "files": {"<remote path>": <version>},
     "projects": {"~-code-app": {"key": "~/code/app", "path": "/home/ann/code/app"}},
     "moves": {"-srv-app": {"to": "~-work-app", "at": 1764500000000000000}}}

`decode_manifest` reads one for `migrate`. Every field is checked on load: an entry that
names an unsafe path or malformed values is refused whole.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import RemoteFormatError
from .moves import Move
from .pathmap import is_safe_path, validate_remote_path
from .projects import Project, is_key
from .versions import Segment, Version, VersionVector

FORMAT = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
DEVICE_ID = re.compile(r"^[0-9a-zA-Z_-]{1,64}$")
MANIFEST_NAME = re.compile(r"^[0-9a-zA-Z_-]{1,64}\.age$")  # manifests/<device id>.age


@dataclass
class Manifest:
    """What one device has published: its versions of each path, its projects and moves."""

    device_id: str
    device_name: str
    updated: str
    files: Mapping[str, Version]  # a dict, or a kept view's `view_cache.StoredFiles`
    projects: dict[str, Project] = field(default_factory=dict)
    moves: dict[str, Move] = field(default_factory=dict)


def version_to_json(version: Version) -> dict:
    entry = {
        "sha256": version.sha256,
        "size": version.size,
        "mtime_ns": version.mtime_ns,
        "vector": version.vector.as_dict(),
        "device": version.device,
        "deleted": version.deleted,
        "segments": [[s.sha256, s.size] for s in version.segments],
    }
    if version.mode is not None:
        entry["mode"] = version.mode
    return entry


# One encoder for every version: json.dumps with separators builds one per call, which is
# as long again as the encoding of a version (stores write 100,000 of them).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def version_text(version: Version) -> str:
    """`version_to_json` as compact JSON: how the stores keep a version."""
    return _COMPACT.encode(version_to_json(version))


def version_from_json(path: str, raw: object) -> Version:
    def bad(what: str) -> RemoteFormatError:
        return RemoteFormatError(f"the version of {path!r} is invalid: {what}")

    if not isinstance(raw, dict):
        raise bad("not a mapping")
    deleted = raw.get("deleted", False)
    sha256, size, mtime_ns = raw.get("sha256"), raw.get("size"), raw.get("mtime_ns")
    vector, device, segments = raw.get("vector"), raw.get("device"), raw.get("segments", [])
    mode = raw.get("mode")
    if not isinstance(deleted, bool):
        raise bad("deleted")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("size")
    if not isinstance(mtime_ns, int) or isinstance(mtime_ns, bool):
        raise bad("mtime_ns")
    if not isinstance(device, str) or not DEVICE_ID.match(device):
        raise bad("device")
    if mode is not None and (
        not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777
    ):
        raise bad("mode")
    if not isinstance(vector, dict) or not vector:
        raise bad("vector")
    for key, count in vector.items():
        if not DEVICE_ID.match(key) or not isinstance(count, int) or count <= 0:
            raise bad("vector")
    if not isinstance(segments, list):
        raise bad("segments")
    parsed: list[Segment] = []
    for segment in segments:
        if (
            not isinstance(segment, list)
            or len(segment) != 2
            or not isinstance(segment[0], str)
            or not _HEX64.match(segment[0])
            or not isinstance(segment[1], int)
            or segment[1] < 0
        ):
            raise bad("segments")
        parsed.append(Segment(segment[0], segment[1]))
    if deleted:
        if parsed or size:
            raise bad("a deleted entry with content")
        sha256, mode = "", None
    elif not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise bad("sha256")
    elif sum(s.size for s in parsed) != size or (size and not parsed):
        raise bad("segment sizes do not add up to the size")
    return Version(
        sha256=sha256,
        size=size,
        mtime_ns=mtime_ns,
        vector=VersionVector.of(vector),
        device=device,
        deleted=deleted,
        segments=tuple(parsed),
        mode=mode,
    )


def decode_manifest(data: bytes, expected_device: str) -> Manifest:
    """Parse and validate a decrypted manifest stored as manifests/<expected_device>.age."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RemoteFormatError(f"manifest of device {expected_device} is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RemoteFormatError(f"manifest of device {expected_device} has an unknown format")
    device = document.get("device")
    files = document.get("files")
    if (
        not isinstance(device, dict)
        or device.get("id") != expected_device
        or not isinstance(device.get("name"), str)
        or not isinstance(files, dict)
    ):
        raise RemoteFormatError(f"manifest of device {expected_device} is malformed")
    return Manifest(
        device_id=expected_device,
        device_name=device["name"],
        updated=str(document.get("updated", "")),
        files={validate_remote_path(p): version_from_json(p, raw) for p, raw in files.items()},
        projects=projects_from_json(document.get("projects", {})),
        moves=moves_from_json(document.get("moves", {})),
    )


def projects_to_json(projects: dict[str, Project]) -> dict:
    return {
        folder: {"key": project.key, "path": project.path}
        for folder, project in sorted(projects.items())
    }


def projects_from_json(raw: object) -> dict[str, Project]:
    """A project table, checked: each remote folder one safe name, each key a key."""
    if not isinstance(raw, dict):
        raise RemoteFormatError("the project table is not a mapping")
    projects = {}
    for folder, entry in raw.items():
        if (
            not _is_folder(folder)
            or not isinstance(entry, dict)
            or not is_key(entry.get("key"))
            or not isinstance(entry.get("path"), str)
            or len(entry["path"]) > 4096
        ):
            raise RemoteFormatError(f"the project table entry {folder!r} is invalid")
        projects[folder] = Project(entry["key"], entry["path"])
    return projects


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def moves_to_json(moves: Mapping[str, Move]) -> dict:
    return {source: {"to": move.to, "at": move.at} for source, move in sorted(moves.items())}


def moves_from_json(raw: object) -> dict[str, Move]:
    """A moves table (see `moves`), checked: each folder one safe name, each time an
    integer."""
    if not isinstance(raw, dict):
        raise RemoteFormatError("the moves table is not a mapping")
    moves = {}
    for source, entry in raw.items():
        if (
            not _is_folder(source)
            or not isinstance(entry, dict)
            or not _is_folder(entry.get("to"))
            or not isinstance(entry.get("at"), int)
            or isinstance(entry.get("at"), bool)
        ):
            raise RemoteFormatError(f"the moves table entry {source!r} is invalid")
        moves[source] = Move(entry["to"], entry["at"])
    return moves


def _is_folder(name: object) -> bool:
    """One safe name of a folder under projects/."""
    return isinstance(name, str) and "/" not in name and is_safe_path(name)
