"""push: encrypt and send what changed here.

Scan; if nothing changed, stop (no network). Else fetch the manifests, encrypt what changed
into staging/, send every object in one rclone call, then this device's manifest, then save
state.json. Objects first, the manifest last: a manifest never names a missing object.
A narrow push (one session: see `scope`) sends only what changed in it; everything else stays
pending, and this device's manifest keeps its other entries as they were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import BinaryIO

from .. import crypto
from ..errors import ClaudeSyncError
from ..files import NO_SPACE, check_free_space, disk_full, private_folder
from ..manifest import Manifest, encode_manifest, now_iso
from ..pathmap import CONFLICT_COPY, is_transcript, temporary_name
from ..plan import (
    Adopt,
    Publish,
    PushAction,
    Sweep,
    Tombstone,
    Upload,
    decide_push,
)
from ..remote import object_path
from ..scan import read_prefix
from ..scope import EVERYTHING, Scope, check_session_known
from ..session import Event, Listener, Session, Summary
from ..state import Entry
from ..versions import Segment, Version
from ..workspace import Workspace

MAX_SEGMENTS = 16
MANIFEST_ROOM = 1024 * 1024  # staging space kept for the manifest, beyond the objects


class _HashingReader:
    """Passes reads through while hashing them: the whole-file hash of an appended file."""

    def __init__(self, source: BinaryIO, digest) -> None:
        self._source = source
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._digest.update(data)
        return data


def _encrypt_upload(
    session: Session, action: Upload, staging: Path, known: set[str]
) -> tuple[Version, Segment | None, Path] | None:
    """Encrypt a changed file into staging; return its version, the segment it encrypted
    (None for an empty file) and the file, or None when the file vanished meanwhile.

    A file that only grew since its base keeps the base's segments and adds one for the
    appended bytes, unless that would make more than MAX_SEGMENTS, or some base segment is
    not `known` (named by a manifest now): a base pulled from a version since replaced may
    have lost its objects to `prune`. The prefix is checked on the very bytes that are
    hashed, in one pass, so a file rewritten meanwhile is caught.
    """
    file = session.ws.claude / session.paths.to_local(action.path)
    try:
        with open(file, "rb") as handle:
            version, new_segment = _encrypt_handle(session, action, handle, staging, known)
    except FileNotFoundError:
        return None
    return version, new_segment, file


def _encrypt_handle(
    session: Session, action: Upload, handle: BinaryIO, staging: Path, known: set[str]
) -> tuple[Version, Segment | None]:
    base = action.base
    info = os.fstat(handle.fileno())
    whole = hashlib.sha256()
    segments: list[Segment] = []
    if (
        base is not None
        and not base.deleted
        and base.segments
        and len(base.segments) < MAX_SEGMENTS
        and info.st_size > base.size
        and all(segment.sha256 in known for segment in base.segments)
    ):
        prefix = hashlib.sha256()
        if read_prefix(handle, base.size, prefix.update) and prefix.hexdigest() == base.sha256:
            whole, segments = prefix, list(base.segments)
        else:
            handle.seek(0)
    temporary = staging / temporary_name()
    digest = crypto.encrypt_stream(_HashingReader(handle, whole), temporary, session.ws.recipient)
    new_segment = Segment(digest.sha256, digest.size) if digest.size else None
    if new_segment is not None:
        segments.append(new_segment)
        destination = staging / object_path(session.object_name(digest.sha256))
        private_folder(destination.parent)
        os.replace(temporary, destination)
    else:
        temporary.unlink()
    version = Version(
        whole.hexdigest(),
        sum(segment.size for segment in segments),
        info.st_mtime_ns,
        action.vector,
        session.device,
        False,
        tuple(segments),
    )
    return version, new_segment


def plan_push(
    session: Session, remote: dict[str, list[Version]], scope: Scope = EVERYTHING
) -> list[PushAction]:
    """What a push would do; with no remote versions given, decided offline."""
    actions = []
    for path in sorted(filter(scope.includes, session.all_paths())):
        entry, local = session.state.files.get(path), session.local.get(path)
        action = decide_push(path, local, entry, remote.get(path, []), session.device)
        if action is not None:
            actions.append(action)
    return actions


def _send(
    session: Session,
    actions: list[PushAction],
    uploads: list[Upload],
    tombstones: list[Tombstone],
    staging: Path,
    scope: Scope,
) -> dict[str, tuple[Version, Path | None]]:
    """Encrypt, send the objects, then the manifest; record the new bases. Returns what
    was sent: path -> (version, the local file, None for a tombstone). The manifest names
    what the state holds for the paths in `scope`, and keeps its entries for the others
    as they were: a narrow push publishes nothing outside it."""
    ws = session.ws
    total = len(uploads) + len(tombstones)
    known = session.remote().known_segments()
    to_send: set[str] = set()
    updates: dict[str, tuple[Version, Path | None]] = {}
    for index, action in enumerate(uploads, 1):
        encrypted = _encrypt_upload(session, action, staging, known)
        if encrypted is None:
            session.listen(Event("warning", action.path, detail=f"{action.path} vanished"))
            continue
        version, new_segment, file = encrypted
        if new_segment is not None and new_segment.sha256 not in known:
            to_send.add(session.object_name(new_segment.sha256))
        updates[action.path] = (version, file)
        session.listen(Event("upload", action.path, version.size, index, total))
    for index, action in enumerate(tombstones, len(uploads) + 1):
        tombstone = Version("", 0, time.time_ns(), action.vector, session.device, deleted=True)
        updates[action.path] = (tombstone, None)
        session.listen(Event("delete", action.path, 0, index, total))
    if to_send:
        ws.remote.upload_objects(staging, sorted(to_send))
    for action in actions:
        if isinstance(action, Sweep):
            session.state.files[action.path].swept = True
        elif isinstance(action, Publish):
            entry = session.state.files[action.path]
            entry.base = dataclasses.replace(
                action.base, vector=action.vector, device=session.device
            )
            entry.publish = False
    for path, (version, file) in updates.items():
        entry = Entry(version)
        if file is not None:
            entry.size, entry.mtime_ns = session.local[path].size, session.local[path].mtime_ns
            if version.sha256 != session.local[path].sha256:
                entry.size = entry.mtime_ns = None
        session.state.files[path] = entry
    sent = {segment.sha256 for version, _ in updates.values() for segment in version.segments}
    publish_manifest(session, staging, scope, known | sent)
    return updates


def publish_manifest(session: Session, staging: Path, scope: Scope, present: set[str]) -> None:
    """Send this device's manifest, then save the state. It names what the state holds for
    the paths in `scope`, and keeps its entries for the others as they were (a narrow run
    publishes nothing outside it). A base with a segment not `present` (named by a manifest
    when the run began, or sent by it) keeps its old entry too: a version pulled here, and
    replaced by its device since, may have lost its objects to `prune`, and a manifest
    names no missing object."""
    ws = session.ws
    previous = session.remote().manifests.get(session.device)
    manifest = Manifest(
        session.device,
        ws.config.device_name,
        now_iso(),
        {
            **(previous.files if previous else {}),
            **{
                path: entry.base
                for path, entry in session.state.files.items()
                if scope.includes(path)
                and all(segment.sha256 in present for segment in entry.base.segments)
            },
        },
        session.new_stamp(),
    )
    manifest.projects = session.paths.published(manifest.files)
    manifest.moves = session.state.moves
    encrypted = staging / "manifest.age"
    encrypted.write_bytes(crypto.encrypt_bytes(encode_manifest(manifest), ws.recipient))
    ws.remote.upload_manifest(session.device, encrypted)
    session.state.last_push = now_iso()
    session.state.publish_moves = False
    session.save()


def _new_bytes(action: Upload) -> int:
    """About how many bytes an upload sends: a file that grew sends what it grew by."""
    base = action.base
    grew = base is not None and not base.deleted and action.local.size > base.size
    return action.local.size - (base.size if grew and base is not None else 0)


def push(
    ws: Workspace,
    listen: Listener,
    dry_run: bool = False,
    force: bool = False,
    foreground_bytes: int | None = None,
    scope: Scope = EVERYTHING,
) -> Summary:
    """Push what changed among the paths `scope` takes in (the others stay pending). With
    `foreground_bytes`, a push that would send more than that does nothing and says so
    (summary.deferred): the caller hands it to the background."""
    session = Session(ws, listen)
    if not dry_run:
        session.empty_trash()
    session.warn_unmatched_includes()
    summary = Summary()
    if not ws.claude.is_dir() and any(not e.base.deleted for e in session.state.files.values()):
        raise ClaudeSyncError(
            f"the Claude folder {ws.claude} is missing, but files were synced from it: "
            "nothing pushed (is CLAUDE_CONFIG_DIR right?)"
        )
    if scope.session_id is not None:
        check_session_known(session, scope.session_id)
    if session.forget_unsynced() and not dry_run:
        session.save()
    offline = plan_push(session, {}, scope)
    if not offline and not session.state.publish_moves:
        return summary
    uploading = sum(_new_bytes(action) for action in offline if isinstance(action, Upload))
    if foreground_bytes is not None and uploading > foreground_bytes and not dry_run:
        summary.deferred = True
        return summary
    if all(isinstance(action, Sweep) for action in offline) and not session.state.publish_moves:
        if not dry_run:
            for action in offline:
                session.state.files[action.path].swept = True
            session.save()
        return summary
    remote = session.remote().versions()
    actions = plan_push(session, remote, scope)
    tombstones = [a for a in actions if isinstance(a, Tombstone)]
    # Conflict copies are removed by settling them: never what the guard is for.
    guarded = [a for a in tombstones if not CONFLICT_COPY.search(a.path)]
    deletable = {
        path
        for path, versions in remote.items()
        if not is_transcript(path)
        and not CONFLICT_COPY.search(path)
        and any(not v.deleted for v in versions)
    }
    if len(guarded) > 1 and 2 * len(guarded) > len(deletable) and not force:
        raise ClaudeSyncError(
            f"this push would delete {len(guarded)} of the {len(deletable)} files on the "
            f"remote that can be deleted; check {ws.claude}, then use --force if intended"
        )
    adopted = [a for a in actions if isinstance(a, Adopt)]
    for action in adopted:
        local = session.local[action.path]
        session.state.files[action.path] = Entry(action.version, local.size, local.mtime_ns)
    if len(adopted) == len(actions) and not session.state.publish_moves:
        if not dry_run:
            session.save()
        return summary
    uploads = [a for a in actions if isinstance(a, Upload)]
    total = len(uploads) + len(tombstones)
    if dry_run:
        for index, action in enumerate(uploads + tombstones, 1):
            kind = "upload" if isinstance(action, Upload) else "delete"
            size = action.local.size if isinstance(action, Upload) else 0
            session.listen(Event(kind, action.path, size, index, total, "dry run"))
        summary.uploaded, summary.deleted = len(uploads), len(tombstones)
        return summary

    moving = len(session.state.moves) if session.state.publish_moves else 0
    staging = ws.staging / "push"
    shutil.rmtree(staging, ignore_errors=True)
    encrypting = sum(_new_bytes(action) for action in uploads)
    check_free_space({ws.staging: encrypting + MANIFEST_ROOM}, "push")
    private_folder(staging)
    try:
        updates = _send(session, actions, uploads, tombstones, staging, scope)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise disk_full(error, ws.staging, "push") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.uploaded = sum(file is not None for _, file in updates.values())
    summary.published = sum(isinstance(action, Publish) for action in actions)
    summary.moves = moving
    summary.deleted = len(tombstones)
    return summary
