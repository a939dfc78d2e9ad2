"""Remote format 2's journal: each device's immutable, authenticated entries.

    journal/<device-id>/<seq: 12 digits>-<8 random hex>.age      age(zstd(json))

    {"format": 2, "device": {"id": "9f2c...", "name": "laptop"}, "seq": 7,
     "kind": "delta" | "snapshot", "updated": "<iso>",
     "instance": {"id": "<hex>", "created": <ns>},
     "files": {"<remote path>": <version: see `manifest`>},
     "projects": {...}, "moves": {...},
     "mac": "<hex>"}

`mac` is HMAC-SHA-256, under the metadata key (derived from the identity, never from the
public key), of the entry's canonical JSON without `mac` (sorted keys, no spaces, UTF-8):
it covers the device, the sequence number, the kind and every path. A reader checks it,
and that the device and sequence number match the entry's name, before using anything in
it. Only a holder of the identity can write an entry a reader accepts.

A snapshot holds the device's whole view; a delta the paths that changed since the entry
before it. A device's view is its newest snapshot with every later delta applied in
order. Sequence numbers only grow per device; an entry is never overwritten (the random
part makes every name new), and a device deletes only its own entries below its newest
snapshot. `instance` names the home that wrote the entry (see `instance`): two machines
writing as one device (a copied home) are told apart by it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import RemoteFormatError
from .manifest import (
    Manifest,
    moves_from_json,
    moves_to_json,
    projects_from_json,
    projects_to_json,
    version_from_json,
    version_to_json,
)
from .moves import Move
from .pathmap import validate_remote_path
from .projects import Project
from .remote import JOURNAL
from .versions import Version

FORMAT = 2
ENTRY_NAME = re.compile(r"^(\d{12})-[0-9a-f]{8}\.age$")
DELTA, SNAPSHOT = "delta", "snapshot"


@dataclass
class JournalEntry:
    device_id: str
    device_name: str
    seq: int
    kind: str  # DELTA or SNAPSHOT
    updated: str
    instance_id: str
    instance_created: int
    files: dict[str, Version] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    moves: dict[str, Move] = field(default_factory=dict)


def entry_name(seq: int) -> str:
    """A new, never used name for entry `seq`."""
    return f"{seq:012d}-{os.urandom(4).hex()}.age"


def entry_seq(name: str) -> int | None:
    """The sequence number in an entry's file name; None for a name that is not ours."""
    match = ENTRY_NAME.match(name)
    return int(match.group(1)) if match else None


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(document: dict, key: bytes) -> str:
    return hmac.new(key, _canonical(document), hashlib.sha256).hexdigest()


def encode_entry(entry: JournalEntry, key: bytes) -> bytes:
    """The entry's plaintext, authenticated under the metadata `key`."""
    document = {
        "format": FORMAT,
        "device": {"id": entry.device_id, "name": entry.device_name},
        "seq": entry.seq,
        "kind": entry.kind,
        "updated": entry.updated,
        "instance": {"id": entry.instance_id, "created": entry.instance_created},
        "projects": projects_to_json(entry.projects),
        "moves": moves_to_json(entry.moves),
    }
    # Each member is serialized once, not once for the MAC and again with it, and each
    # version on its own: a snapshot of 100,000 paths as one document of dicts would take a
    # second to serialize twice, and 150 MB.
    members = {name: _canonical(value) for name, value in document.items()}
    members["files"] = _joined(
        {path: _canonical(version_to_json(version)) for path, version in entry.files.items()}
    )
    mac = hmac.new(key, _joined(members), hashlib.sha256).hexdigest()
    return _joined({**members, "mac": _canonical(mac)})


def _joined(members: dict[str, bytes]) -> bytes:
    """What `_canonical` gives for an object whose members serialize to `members`."""
    return (
        b"{" + b",".join(_canonical(name) + b":" + members[name] for name in sorted(members)) + b"}"
    )


def decode_entry(data: bytes, key: bytes, device_id: str, seq: int) -> JournalEntry:
    """Parse and check an entry stored as journal/<device_id>/<seq>-....age: its MAC
    first, then that it names that device and sequence number, then every field."""
    where = f"{JOURNAL}/{device_id}/ entry {seq}"
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RemoteFormatError(f"{where} is not JSON: refused") from None
    if not isinstance(document, dict) or not isinstance(document.get("mac"), str):
        raise RemoteFormatError(f"{where} is not authenticated: refused")
    claimed = document.pop("mac")
    if not hmac.compare_digest(claimed, _mac(document, key)):
        raise RemoteFormatError(f"{where} fails its authentication (forged, or altered): refused")
    device, instance = document.get("device"), document.get("instance")
    if (
        document.get("format") != FORMAT
        or not isinstance(device, dict)
        or device.get("id") != device_id
        or not isinstance(device.get("name"), str)
        or document.get("seq") != seq
        or document.get("kind") not in (DELTA, SNAPSHOT)
        or not isinstance(instance, dict)
        or not isinstance(instance.get("id"), str)
        or not isinstance(instance.get("created"), int)
        or not isinstance(document.get("files"), dict)
    ):
        raise RemoteFormatError(f"{where} does not match its name, or is malformed: refused")
    return JournalEntry(
        device_id=device_id,
        device_name=device["name"],
        seq=seq,
        kind=document["kind"],
        updated=str(document.get("updated", "")),
        instance_id=instance["id"],
        instance_created=instance["created"],
        files={
            validate_remote_path(p): version_from_json(p, raw)
            for p, raw in document["files"].items()
        },
        projects=projects_from_json(document.get("projects", {})),
        moves=moves_from_json(document.get("moves", {})),
    )


def device_view(entries: Iterable[JournalEntry]) -> Manifest | None:
    """One device's view from its entries: the newest snapshot, then each later delta."""
    ordered = sorted(entries, key=lambda entry: entry.seq)
    if not ordered:
        return None
    start = max((i for i, entry in enumerate(ordered) if entry.kind == SNAPSHOT), default=0)
    last = ordered[-1]
    files: dict[str, Version] = {}
    view = Manifest(last.device_id, last.device_name, last.updated, files)
    for entry in ordered[start:]:
        files.update(entry.files)
        view.projects.update(entry.projects)
        view.moves.update(entry.moves)
    return view
