"""push: encrypt and send what changed here.

Scan; if nothing changed, stop (no network). Else read the journal (see `remote_view`),
encrypt what changed into staging/, send the objects in batches while the rest are still
being encrypted, then this device's journal entry, then save the state. Objects first, the
entry last: an entry never names a missing object. To a remote in a folder on this
machine, each object and the entry is sent by a rename, no rclone started (see
`Remote.upload_objects`). An object a view names is taken to be on the remote; `push --all`
looks instead (one listing), and sends again each one missing whose bytes this device has.
A narrow push (one session: see `scope`) sends only what changed in it; everything else stays
pending, and this device's view keeps its other paths as they were.
"""

from __future__ import annotations

import dataclasses
import operator
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ClaudeSyncError
from ..files import NO_SPACE, check_free_space, disk_full, private_folder
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
from ..scope import EVERYTHING, Scope, check_session_known
from ..session import Event, Listener, Session, Summary
from ..state import Entry
from ..versions import Segment, Version
from ..workspace import Workspace

if TYPE_CHECKING:
    from ..encrypting import Encrypted, Job
    from ..rclone import Progress

MAX_SEGMENTS = 16
MANIFEST_ROOM = 1024 * 1024  # staging space kept for the manifest, beyond the objects


def _job(session: Session, action: Upload, staging: Path, known: set[str]) -> Job:
    """How to encrypt a changed file. A file that only grew since its base keeps the
    base's segments and adds one for the appended bytes, unless that would make more than
    MAX_SEGMENTS, or some base segment is not `known` (named by a view now): a base pulled
    from a version since replaced may have lost its objects to `prune`. The prefix is
    checked on the very bytes that are hashed, in one pass, so a file rewritten meanwhile
    is caught (see `encrypting`)."""
    from ..encrypting import Job  # _encrypt_and_send imported it

    base = action.base
    extend = (
        base is not None
        and not base.deleted
        and base.segments
        and len(base.segments) < MAX_SEGMENTS
        and action.local.size > base.size
        and all(segment.sha256 in known for segment in base.segments)
    )
    return Job(
        action.path,
        f"{session.ws.claude}/{session.paths.to_local(action.path)}",
        staging,
        action.local.size,
        base.size if extend and base is not None else 0,
        base.sha256 if extend and base is not None else "",
        session.ws.remote.folder_here,
    )


def _version(session: Session, action: Upload, encrypted: Encrypted) -> Version:
    """The version an encrypted file is published as. It records the file's mode as the
    open file had it (a chmod alone sends nothing; it travels with the next change)."""
    segments = list(action.base.segments) if encrypted.extended and action.base else []
    if encrypted.object is not None:
        segments.append(Segment(encrypted.object.sha256, encrypted.object.size))
    return Version(
        encrypted.sha256,
        encrypted.size,
        encrypted.mtime_ns,
        action.vector,
        session.device,
        False,
        tuple(segments),
        encrypted.mode,
    )


@dataclass(frozen=True)
class Holder:
    """Where this device may still have an object's bytes: `segment` of `path`'s version,
    `offset` bytes into the file (a file is its segments concatenated)."""

    path: str
    device: str  # the device that made the version
    offset: int
    segment: Segment


def holders(session: Session, versions: Iterable[tuple[str, Version]]) -> dict[str, list[Holder]]:
    """Every object the (path, version) pairs name, by object name, with each place here
    whose bytes it would be."""
    found: dict[str, list[Holder]] = {}
    for path, version in versions:
        offset = 0
        for segment in version.segments:
            holder = Holder(path, version.device, offset, segment)
            found.setdefault(session.object_name(segment.sha256), []).append(holder)
            offset += segment.size
    return found


def stage_from_here(
    session: Session, names: Iterable[str], found: dict[str, list[Holder]], staging: Path
) -> dict[str, Holder]:
    """Encrypt each named object again, as a push does, from the first local file that
    still holds its bytes; the names staged, with the holder each came from. Each range is
    hashed as it is encrypted, so an object is never sent under a name its bytes do not
    have (a file changed since its version was made holds other bytes: it is passed over)."""
    staged: dict[str, Holder] = {}
    for name in names:
        tried: set[tuple[str, int]] = set()
        for holder in found[name]:
            if (holder.path, holder.offset) in tried:
                continue
            tried.add((holder.path, holder.offset))
            if _stage_segment(session, holder, staging):
                staged[name] = holder
                break
    return staged


def _stage_segment(session: Session, holder: Holder, staging: Path) -> bool:
    from ..crypto import encrypt_stream
    from ..encrypting import into_staging  # push --all only: not on start-up

    file = session.ws.claude / session.paths.to_local(holder.path)
    if not file.is_file():
        return False
    temporary = staging / temporary_name()
    try:
        with open(file, "rb") as handle:
            handle.seek(holder.offset)
            digest = encrypt_stream(
                handle, temporary, session.ws.recipient, limit=holder.segment.size
            )
    except OSError as error:
        if error.errno in NO_SPACE:
            raise
        temporary.unlink(missing_ok=True)
        return False  # unreadable here: not bytes this device can give
    if (digest.sha256, digest.size) != (holder.segment.sha256, holder.segment.size):
        temporary.unlink()
        return False
    into_staging(temporary, staging, session.object_name(digest.sha256))
    return True


def plan_push(
    session: Session,
    remote: dict[str, list[Version]],
    scope: Scope = EVERYTHING,
    among: Collection[str] | None = None,
) -> list[PushAction]:
    """What a push would do, for every path or those `among`; with no remote versions
    given, decided offline."""
    actions = []
    for path in sorted(filter(scope.includes, session.unsettled() if among is None else among)):
        entry, local = session.state.files.get(path), session.local.get(path)
        action = decide_push(path, local, entry, remote.get(path, []), session.device)
        if action is not None:
            actions.append(action)
    return actions


def _encrypt_and_send(
    session: Session,
    uploads: list[Upload],
    staging: Path,
    known: set[str],
    on_remote: Callable[[str], bool],
    total: int,
    progress: Progress | None,
) -> tuple[dict[str, tuple[Version, str | None]], dict[str, tuple[int, int]], set[str]]:
    """Encrypt every upload (see `encrypting`) and send the new objects, in batches while
    the rest are still being encrypted (to a remote in a folder on this machine, each as it
    is made); return path -> (version, local file), path -> (size, mtime) of the files
    nothing wrote to while they were read, and the names of the objects sent. A batch is
    `workers.batch_bytes` of files."""
    # Imported here, not above: a push with nothing to send encrypts nothing.
    from ..encrypting import Keys, encrypt_all
    from ..rclone import BatchedProgress
    from ..workers import batch_bytes

    jobs = {action.path: _job(session, action, staging, known) for action in uploads}
    by_path = {action.path: action for action in uploads}
    total_bytes = sum(job.size for job in jobs.values())
    most = batch_bytes(total_bytes)
    shown = BatchedProgress(progress, total_bytes) if progress is not None else None
    updates: dict[str, tuple[Version, str | None]] = {}
    read_at: dict[str, tuple[int, int]] = {}
    sent: set[str] = set()
    batch: list[str] = []
    pending = 0  # bytes of the files whose objects are in `batch`
    done = 0  # bytes of the files encrypted since the last batch was sent, `batch`'s or not

    def send() -> None:
        session.ws.remote.upload_objects(
            staging, sorted(batch), progress=shown.batch(done) if shown else None
        )
        if shown:
            shown.sent(done)

    keys = Keys(str(session.ws.recipient), session.ws.name_key)
    try:
        for index, (job, encrypted) in enumerate(encrypt_all(list(jobs.values()), keys), 1):
            if encrypted is not None and encrypted.sent:  # in the remote's folder already
                sent.add(encrypted.name)
                if shown:
                    shown.sent(job.size)
            else:
                done += job.size
            if encrypted is None:
                session.listen(Event("warning", job.path, detail=f"{job.path} vanished"))
                continue
            version = _version(session, by_path[job.path], encrypted)
            if encrypted.object is not None and not encrypted.sent:
                name = encrypted.name
                if not on_remote(encrypted.object.sha256) and name not in sent:
                    batch.append(name)
                    sent.add(name)
                    pending += job.size
            updates[job.path] = (version, job.file)
            if encrypted.stable:
                read_at[job.path] = (encrypted.size, encrypted.mtime_ns)
            session.listen(Event("upload", job.path, version.size, index, total))
            if pending >= most:
                send()
                batch, pending, done = [], 0, 0
        if batch:
            send()
        elif shown:
            shown.sent(done)
    finally:
        if shown:
            shown.end()
    return updates, read_at, sent


def _known_segments(session: Session, actions: list[PushAction], scope: Scope) -> set[str]:
    """The objects the views name for the paths this push sends or may publish (see
    `publish_entry`): a segment only another path names is sent again, not looked up in
    every version of the remote."""
    interest = {action.path for action in actions}
    interest.update(filter(scope.includes, session.state.files.unpublished()))
    return session.remote().known_segments(interest)


def _send(
    session: Session,
    actions: list[PushAction],
    uploads: list[Upload],
    tombstones: list[Tombstone],
    staging: Path,
    scope: Scope,
    summary: Summary,
    resend: bool,
    progress: Progress | None = None,
) -> dict[str, tuple[Version, str | None]]:
    """Encrypt, send the objects, then the journal entry; record the new bases. Returns
    what was sent: path -> (version, the local file, None for a tombstone). The entry
    names what the state holds for the paths in `scope` (see `publish_entry`). With
    `resend`, every object this device's view names is looked for in one listing of the
    remote, not taken to be there because a view names it; those missing are sent again
    from the bytes here."""
    from ..manifest import now_iso  # see `_encrypt_and_send`

    ws = session.ws
    total = len(uploads) + len(tombstones)
    listed = set(ws.remote.list_objects()) if resend else set()
    known = set() if resend else _known_segments(session, actions, scope)

    def on_remote(sha256: str) -> bool:
        """With `resend`, what the listing shows; else what a manifest names (objects are
        sent before the manifest that names them)."""
        return session.object_name(sha256) in listed if resend else sha256 in known

    updates, read_at, sent_objects = _encrypt_and_send(
        session, uploads, staging, known, on_remote, total, progress
    )
    for index, action in enumerate(tombstones, len(uploads) + 1):
        tombstone = Version("", 0, time.time_ns(), action.vector, session.device, deleted=True)
        updates[action.path] = (tombstone, None)
        session.listen(Event("delete", action.path, 0, index, total))
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
        # The stat of the bytes sent, so that the next scan need not read them again: as
        # they were read, or as the scan saw the same bytes.
        entry = Entry(version)
        seen = session.local.get(path)
        if path in read_at:
            entry.size, entry.mtime_ns = read_at[path]
        elif file is not None and seen is not None and version.sha256 == seen.sha256:
            entry.size, entry.mtime_ns = seen.size, seen.mtime_ns
        session.state.files[path] = entry
    if resend:
        previous = session.remote().manifests.get(session.device)
        files = {
            **(previous.files if previous else {}),
            **{p: entry.base for p, entry in session.state.files.items() if scope.includes(p)},
        }
        to_send = _resend(session, files, listed | sent_objects, staging, summary)
        if to_send:
            ws.remote.upload_objects(staging, sorted(to_send), progress=progress)
    sent = {segment.sha256 for version, _ in updates.values() for segment in version.segments}
    publish_entry(session, scope, staging, None if resend else known | sent, snapshot=resend)
    session.state.last_push = now_iso()
    session.state.publish_moves = False
    session.save()
    return updates


SNAPSHOT_AFTER = 32  # deltas since the last snapshot


def publish_entry(
    session: Session,
    scope: Scope,
    staging: Path,
    present: set[str] | None,
    snapshot: bool = False,
) -> None:
    """Write this device's next journal entry: a delta of the paths in `scope` whose
    version differs from what the device published last, or, after SNAPSHOT_AFTER deltas
    or once the deltas name more paths than the last snapshot holds, a snapshot of its
    whole view (its versions outside `scope` as published); then delete its own entries
    below a new snapshot. `snapshot`: write one whatever the count (`push --all`).

    A base with a segment not `present` (named by a view when the run began, or sent by
    it; None: every object was checked) keeps what was published for its path: a version
    pulled here, and replaced by its device since, may have lost its objects to `prune`,
    and an entry names no missing object."""
    from ..instance import load_instance  # see `_encrypt_and_send`
    from ..journal import DELTA, SNAPSHOT, JournalEntry
    from ..manifest import now_iso
    from ..remote_view import delete_entries, keep_written, write_entry

    ws, device = session.ws, session.device
    view = session.remote()
    files_here = session.state.files
    published = view.manifests[device].files if device in view.manifests else {}

    def publishable(path: str) -> bool:
        return present is None or all(s.sha256 in present for s in files_here[path].base.segments)

    # Only entries not marked `published` can differ from what this device published.
    changed = {}
    for path in filter(scope.includes, files_here.unpublished()):
        entry = files_here[path]
        if published.get(path) == entry.base:
            entry.published = True
        elif publishable(path):
            changed[path] = entry.base
    own = view.entries.get(device, [])
    last_snapshot = next((e for e in reversed(own) if e.kind == SNAPSHOT), None)
    since = [e for e in own if last_snapshot is not None and e.seq > last_snapshot.seq]
    snapshot = (
        snapshot
        or last_snapshot is None
        or len(since) >= SNAPSHOT_AFTER
        or sum(entry.count for entry in since) + len(changed) > last_snapshot.count
    )
    if snapshot:
        current = {p: e.base for p, e in files_here.items() if scope.includes(p) and publishable(p)}
        files = {**published, **current}
    else:
        current, files = changed, changed
    seq = max(session.state.own_seq, view.last_seq(device)) + 1
    instance = load_instance(ws.home)
    entry = JournalEntry(
        device,
        ws.config.device_name,
        seq,
        SNAPSHOT if snapshot else DELTA,
        now_iso(),
        instance.id,
        instance.created,
        files,
        session.paths.published(files),
        dict(session.state.moves),
    )
    name = write_entry(ws, entry, staging)
    for path in current:
        files_here[path].published = True
    session.state.own_seq = seq
    session.state.journal_seen[device] = seq
    session.state.settle_own_entry(name)
    if snapshot:
        delete_entries(ws, device, view.names.get(device, []), staging)
    keep_written(ws, view, entry, name)


def _resend(
    session: Session, files: dict[str, Version], there: set[str], staging: Path, summary: Summary
) -> set[str]:
    """Stage every object `files` name that is not `there`, from the bytes here; count
    them in `summary`, and name each path whose object no file here holds."""
    from ..remote import object_path  # see `_encrypt_and_send`

    found = holders(session, files.items())
    missing = sorted(name for name in found if name not in there)
    check_free_space({staging: sum(found[name][0].segment.size for name in missing)}, "push")
    staged = stage_from_here(session, missing, found, staging)
    summary.checked, summary.resent = len(found), len(staged)
    lost = {(holder.path, name) for name in missing if name not in staged for holder in found[name]}
    for path, name in sorted(lost):
        local = session.paths.to_local(path)
        session.listen(
            Event(
                "warning",
                path,
                detail=f"{local}: object {object_path(name)} is missing on the remote, and "
                "this device does not have its bytes",
            )
        )
    summary.unrestorable = sorted({session.paths.to_local(path) for path, _ in lost})
    return set(staged)


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
    resend: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Push what changed among the paths `scope` takes in (the others stay pending). With
    `foreground_bytes`, a push that would send more than that does nothing and says so
    (summary.deferred): the caller hands it to the background. With `resend` (push --all,
    for a remote that was wiped, replaced or rolled back) every object this device's view
    names and the remote lacks is sent again, and a snapshot written, even with no change.
    `progress` is told how the upload of the objects goes."""
    session = Session(ws, listen, accept_rollback=resend, defer_hashes=True)
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
    # An entry is written even with no file to send: a move to publish, or push --all.
    rewrite = session.state.publish_moves or resend
    if not offline and not rewrite:
        return summary
    uploading = sum(_new_bytes(action) for action in offline if isinstance(action, Upload))
    if foreground_bytes is not None and uploading > foreground_bytes and not dry_run:
        summary.deferred = True
        return summary
    if all(isinstance(action, Sweep) for action in offline) and not rewrite:
        if not dry_run:
            for action in offline:
                session.state.files[action.path].swept = True
            session.save()
        return summary
    # A path the plan without the remote leaves alone is left alone with it (`decide_push`
    # looks at the remote only for a local change, or a settlement to publish).
    changed = {action.path for action in offline}
    remote = session.remote().versions(changed)
    session.hash_deferred(remote)
    # A path with no version on the remote keeps its offline decision: `decide_push` had
    # no versions to weigh then either, and its file is as the scan found it
    # (`hash_deferred` hashes only files with a remote version of their size).
    actions = sorted(
        [action for action in offline if action.path not in remote]
        + plan_push(session, remote, scope, remote.keys()),
        key=operator.attrgetter("path"),
    )
    tombstones = [a for a in actions if isinstance(a, Tombstone)]
    # Conflict copies are removed by settling them: never what the guard is for.
    guarded = [a for a in tombstones if not CONFLICT_COPY.search(a.path)]
    if len(guarded) > 1 and not force:
        deletable = {
            path
            for path, versions in session.remote().versions().items()
            if not is_transcript(path)
            and not CONFLICT_COPY.search(path)
            and any(not v.deleted for v in versions)
        }
        if 2 * len(guarded) > len(deletable):
            raise ClaudeSyncError(
                f"this push would delete {len(guarded)} of the {len(deletable)} files on the "
                f"remote that can be deleted; check {ws.claude}, then use --force if intended"
            )
    adopted = [a for a in actions if isinstance(a, Adopt)]
    for action in adopted:
        local = session.local[action.path]
        session.state.files[action.path] = Entry(action.version, local.size, local.mtime_ns)
    if len(adopted) == len(actions) and not rewrite:
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
        updates = _send(
            session, actions, uploads, tombstones, staging, scope, summary, resend, progress
        )
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
