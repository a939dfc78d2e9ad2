"""pull: fetch and apply what changed elsewhere.

Fetch the journal entries that are new (one rclone call; none from a remote in a folder
on this machine: its journal is read in place); with none since the last pull that
settled every path (nor a change of config), stop there: nothing is to decide, and the
Claude folder is not scanned (see `changed_paths`). Otherwise scan, plan, fetch every
needed object (in batches; from a remote in a folder on this machine none: they are read
in place), assemble and verify every file (see `assemble`: a download is decrypted into
a temporary beside its file, the new segments of a grown transcript into staging/;
nothing in the Claude folder changes until all of them check out), sync the disks once,
then write each path (claude_folder.write_file): a file that only grew is extended by
appending the missing bytes; any other is replaced by renaming its temporary over it,
and the old file is checked again after, so that bytes Claude Code wrote meanwhile end
in the file or in trash/. The disks are synced once more before the state records what
was written. A path whose version needs an object that is missing or damaged on the
remote is refused alone (summary.refused), and every other one applied.
A narrow pull (one project, one device's versions, the paths `restore` brings back: see
`scope`) plans over those alone.

Modes: a file a pull creates gets the mode its version recorded where it was written (none
recorded: the default for a new file); a file it replaces or extends keeps its mode here,
the user's choice; a conflict copy is never wider than the version it holds, nor than the
file it sits beside.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import __version__
from ..assemble import Assembler, Needed, fetched_bytes, sync_disks
from ..claude_folder import (
    Written,
    conflict_name,
    copy_beside,
    delete_file,
    extend_file,
    free_copy_name,
    make_way,
    write_file,
)
from ..files import NO_SPACE, check_free_space, disk_full, private_folder
from ..manifest import moves_to_json, now_iso
from ..merges import merge_lines
from ..moves import moved_path
from ..pathmap import is_append_only
from ..plan import (
    Adopt,
    Download,
    PullAction,
    Resolve,
    Trash,
    decide_pull,
    local_changed,
    remote_rank,
    resolve,
)
from ..rclone import BatchedProgress, Progress
from ..remote_view import RemoteView, fetch_remote_view
from ..scan import prefix_sha256, under
from ..scope import EVERYTHING, Scope, device_id, project_folder
from ..session import Event, Listener, Session, Summary, Unwritable, layout_fingerprint
from ..state import Entry
from ..versions import Version, VersionVector
from ..workspace import Workspace


def plan_pull(session: Session, scope: Scope = EVERYTHING) -> list[PullAction]:
    view = session.remote()
    remote = scope.views(view)
    paths = changed_paths(session, view, remote)
    if paths is None:
        paths = session.all_paths() | {path for files in remote for path in files}
    actions: list[PullAction] = []
    for path in sorted(paths):
        if not session.rules.synced(path) or not scope.includes(path):
            continue
        action = decide_pull(
            path,
            session.local.get(path),
            session.state.files.get(path),
            [files[path] for files in remote if path in files],
            session.device,
            session.state_known,
        )
        if action is not None:
            actions.append(action)
    return actions


def changed_paths(
    session: Session, view: RemoteView, remote: list[Mapping[str, Version]]
) -> set[str] | None:
    """The paths a pull must decide; None: every path.

    The state's `settled_view` is the view (each device's entry names) of the last pull
    that applied an action for every path it planned, over every path, with the config it
    names (see `_settled`). Right after it, every path of that view had a state entry
    whose base vector is at least that of each of its versions there: every action
    records one so (an adoption or a download merges the vectors it weighed, a conflict
    every vector), and a path with no action already had one. Since then bases only grew
    (a push bumps a vector, a pull merges into it), and no entry was removed (a save that
    removes one drops `settled_view`; a run that removed one itself, as `sessions restore`
    does before it pulls, plans over every path). Entries are immutable and their names
    unique, so a path that no entry outside the settled view names has, per device, the
    same version as then or none (a device forgotten, a snapshot that left it out:
    versions only go). A push adds the entry it writes to the settled view
    (`State.settle_own_entry`): it names this device's bases, or versions it published
    before, which its bases are at least. For such a path whose local file is unchanged
    from its entry, `decide_pull` finds nothing newer, and decides nothing; nor for one
    changed here, since nothing there is newer than its base (a path with versions there
    has an entry). So these are planned: the paths changed here (the scan's hash is not
    the base's, or there is no entry) and the paths new entries name; with no new entry,
    nothing is, and the folder is not even scanned (see `pull`).

    A pull that left a path as it was (refused, unwritable, held, changed meanwhile) does
    not settle, so the next one decides that path again. A state being rebuilt, another
    config (include/exclude and what this version syncs by default, path map, home,
    project moves), or an entry whose paths are not known here, plans over every path."""
    paths = named_since_settled(session, view)
    if paths is None:
        return None
    files, local = session.state.files, session.local
    paths.update(session.differing)  # no entry is made for each unchanged file
    paths.update(
        path for path in files if path not in local and local_changed(path, None, files.get(path))
    )
    return paths


def named_since_settled(session: Session, view: RemoteView) -> set[str] | None:
    """The paths the entries outside the settled view name (see `changed_paths`); None when
    there is no settled view to plan from."""
    settled = session.state.settled_view
    if (
        not session.state_known
        or settled is None
        or session.state.files.removing
        or settled["config"] != _config(session)
    ):
        return None
    moves = session.state.moves
    paths: set[str] = set()
    for device, names in view.names.items():
        seen = set(settled["view"].get(device, ()))
        for name in names:
            if name not in seen:
                named = view.entry_paths(device, name)
                if named is None:
                    return None
                paths.update(moved_path(moves, path) for path in named)
    return paths


def _config(session: Session) -> str:
    """What of this device's config and state decides which paths sync and where each is
    (the version: what this claude-sync syncs by default, and how)."""
    return json.dumps(
        [
            __version__,
            session.rules.include,
            session.rules.exclude,
            str(session.paths.layout.home),
            layout_fingerprint(session.paths.layout),
            moves_to_json(session.state.moves),
        ]
    )


def _settled(session: Session, copies: list[str]) -> list[str]:
    """Record that this pull settled every path over the view it planned over, and the
    conflict copies in the Claude folder then (those the scan found or the state records,
    and `copies`: made by this pull, or recorded by the last); return those copies."""
    view = {device: list(names) for device, names in session.remote().names.items()}
    session.state.settled_view = {"view": view, "config": _config(session)}
    pending = session.pending_conflicts(copies)
    session.state.settled_conflicts = {"view": view, "copies": pending}
    return pending


def _settled_copies(session: Session) -> list[str] | None:
    """The conflict copies the last settling pull recorded, when it recorded them for the
    view it settled over (see `state`)."""
    settled, conflicts = session.state.settled_view, session.state.settled_conflicts
    if settled is None or conflicts is None or conflicts["view"] != settled["view"]:
        return None
    return conflicts["copies"]


def _download_need(session: Session, path: str, version: Version) -> Needed:
    """What to fetch for `version`: when the unchanged local file already holds its leading
    segments (a transcript that grew elsewhere), only the new ones."""
    entry, local = session.state.files.get(path), session.local.get(path)
    if entry is None or local is None or entry.base.deleted or not entry.base.segments:
        return Needed(path, version, beside=True)
    held = entry.base.segments
    unchanged = (local.sha256, local.size) == (entry.base.sha256, entry.base.size)
    if unchanged and version.segments[: len(held)] == held and len(version.segments) > len(held):
        return Needed(path, version, len(held), entry.base.sha256)
    return Needed(path, version, beside=True)


def _to_fetch(session: Session, actions: list[PullAction]) -> list[Needed]:
    """Every version whose bytes the pull needs from the remote."""
    wanted: list[Needed] = []
    for action in actions:
        if isinstance(action, Download):
            wanted.append(_download_need(session, action.path, action.version))
        elif isinstance(action, Resolve):
            local = session.local.get(action.path)
            wanted += [
                Needed(action.path, v)
                for v in action.options
                if not v.deleted
                and not (local and (v.sha256, v.size) == (local.sha256, local.size))
            ]
    return wanted


def _space_needed(session: Session, wanted: list[Needed], in_place: bool) -> dict[Path, int]:
    """About what a pull writes: in staging the objects (unless they are read `in_place`),
    the new segments of grown files and the versions a conflict reads; in the Claude folder
    every downloaded file beside its target, what grown files grow by, and the largest copy
    a conflict makes."""
    staging = claude = largest = 0
    for need in wanted:
        fetched = fetched_bytes(need)
        staging += 0 if in_place else fetched
        if need.reused:
            staging += fetched
            claude += fetched
        elif need.beside:
            claude += need.version.size
        else:
            staging += need.version.size
            largest = max(largest, need.version.size)
    return {session.ws.staging: staging, session.ws.claude: claude + largest}


def _writable(session: Session, path: str) -> bool:
    try:
        session.target(path)
    except Unwritable as error:
        session.listen(Event("warning", path, detail=str(error)))
        return False
    return True


def _apply_order(action: PullAction) -> tuple[int, int, str]:
    """Adoptions write nothing; deletions go first, deepest first, so that a folder another
    device turned into a file (or the reverse) is out of the way before its new shape."""
    if isinstance(action, Adopt):
        return (0, 0, action.path)
    if isinstance(action, Trash):
        return (1, -action.path.count("/"), action.path)
    return (2, 0, action.path)


def is_transcript_of(path: str, session_id: str) -> bool:
    """Whether `path` is the transcript of Claude Code session `session_id`."""
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == "projects" and parts[2] == f"{session_id}.jsonl"


def pull(
    ws: Workspace,
    listen: Listener,
    dry_run: bool = False,
    held_session: str | None = None,
    project: str | None = None,
    device: str | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Pull everything; with `held_session`, all but that session's transcript, which a
    running Claude Code has already loaded (the paths held back are in summary.held).
    With `project` (a path here) only that project; with `device` (a name or id) only the
    versions that device published. `progress` is told how the download of the objects
    goes."""
    narrow = project is not None or device is not None
    # A narrow pull reads the remote view and finds its project among the files here
    # before it plans: it scans first, as every pull did before it read the view.
    session = Session(ws, listen, scan_later=not narrow)
    if not dry_run:
        session.empty_trash()
    if not narrow:
        view = fetch_remote_view(ws)
        copies = _nothing_since_settled(session, view)
        if copies is None:
            session.scan_folder()  # before the view's project tables are learned, as ever
        session.use_remote(view)
        # Moves the view publishes change what decides the paths: asked again.
        if copies is not None and _nothing_since_settled(session, view) is not None:
            return _nothing_new(session, copies, dry_run)
        if not session.scanned:
            session.scan_folder()
    scope = Scope(
        folder=project_folder(session, project) if project is not None else None,
        device=device_id(session.remote(), device) if device is not None else None,
    )
    return pull_over(session, scope, dry_run, held_session, progress=progress)


def _nothing_since_settled(session: Session, view: RemoteView) -> list[str] | None:
    """When `view` holds no entry outside the view the last pull to settle every path
    planned over, with the same config: the conflict copies that pull recorded. A pull then
    decides nothing, whatever changed here: the paths it would plan are those changed here
    (see `changed_paths`), and each has a base at least each of its versions there, or no
    versions. None otherwise."""
    copies = _settled_copies(session)
    if copies is None or named_since_settled(session, view) != set():
        return None
    return copies


def _nothing_new(session: Session, copies: list[str], dry_run: bool) -> Summary:
    """A pull with nothing new on the remote (see `_nothing_since_settled`), which does not
    scan the Claude folder: it records what a pull that decided nothing records, and names
    the conflict copies still there."""
    summary = Summary()
    if dry_run:
        return summary
    summary.pending = _settled(session, copies)
    session.state.last_pull = now_iso()
    session.save()
    return summary


def pull_over(
    session: Session,
    scope: Scope,
    dry_run: bool = False,
    held_session: str | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Pull the paths `scope` takes in. With `fresh` what is written takes the current
    time as its mtime, not its version's (a restored session, which Claude Code's cleanup
    would otherwise take again at once)."""
    ws = session.ws
    summary = Summary()
    actions = plan_pull(session, scope)
    session.warn_unmatched_includes(session.remote())
    if held_session:
        held = [
            action
            for action in actions
            if not isinstance(action, Adopt) and is_transcript_of(action.path, held_session)
        ]
        held_paths = {action.path for action in held}  # one action per path
        actions = [action for action in actions if action.path not in held_paths]
        summary.held = [session.paths.to_local(action.path) for action in held]
        session.left.update(held_paths)
    # Below a folder that cannot be read nothing is known, so nothing is written there.
    writing: list[PullAction] = []
    for action in actions:
        if isinstance(action, Adopt) or (
            not under(action.path, session.unknown) and _writable(session, action.path)
        ):
            writing.append(action)
        else:
            session.left.add(action.path)
    actions = writing
    actions.sort(key=_apply_order)
    visible = [a for a in actions if not isinstance(a, Adopt)]
    if dry_run:
        for index, action in enumerate(visible, 1):
            kind = {Download: "download", Trash: "delete", Resolve: "conflict"}[type(action)]
            size = action.version.size if isinstance(action, Download) else 0
            session.listen(Event(kind, action.path, size, index, len(visible), "dry run"))
        summary.planned = [a.path for a in visible]
        return summary
    downloads = ws.staging / "pull"
    shutil.rmtree(downloads, ignore_errors=True)
    private_folder(downloads)
    in_place = ws.remote.folder_here
    assembler = Assembler(session, downloads, in_place)
    try:
        wanted = _to_fetch(session, actions)
        check_free_space(_space_needed(session, wanted, in_place is not None), "pull")
        total = sum(map(fetched_bytes, wanted))
        shown = BatchedProgress(progress, total) if progress is not None and total else None
        fetched: set[str] = set()

        def fetch(group: list[Needed]) -> None:
            if in_place is not None:
                return  # the objects are read where they are
            names = {
                session.object_name(segment.sha256)
                for need in group
                for segment in need.version.segments[need.reused :]
            }
            size = sum(map(fetched_bytes, group))
            if names - fetched:
                told = shown.batch(size) if shown else None
                ws.remote.download_objects(downloads, sorted(names - fetched), progress=told)
            fetched.update(names)
            if shown:
                shown.sent(size)

        # Read in place, the objects are not transferred: a person sees them decrypted.
        decrypted = shown.sent if shown and in_place is not None else None
        try:
            refused = _assemble(session, assembler, wanted, fetch, decrypted)
            if wanted:
                sync_disks()  # what was assembled is on disk before it is renamed into place
        except OSError as error:
            if error.errno in NO_SPACE:
                raise disk_full(error, ws.staging, "pull") from None
            raise
        finally:
            if shown:
                shown.end()
        if refused:
            summary.refused = sorted(session.paths.to_local(path) for path in refused)
            actions = [action for action in actions if action.path not in refused]
            visible = [action for action in visible if action.path not in refused]
        try:
            _apply_pull(session, assembler, actions, visible, summary, fresh, scope)
        except OSError as error:
            if error.errno in NO_SPACE:
                raise disk_full(error, ws.claude, "pull") from None
            raise
    finally:
        assembler.discard()
        shutil.rmtree(downloads, ignore_errors=True)
    summary.pending = session.pending_conflicts(summary.pending)
    return summary


def _assemble(
    session: Session,
    assembler: Assembler,
    wanted: list[Needed],
    fetch: Callable[[list[Needed]], None],
    decrypted: Callable[[int], None] | None,
) -> set[str]:
    """Assemble every needed version; the paths refused because an object they need is
    missing or damaged on the remote, each named in one warning. Those paths stay as they
    are, with no new base, so the next pull tries them again."""
    refused = assembler.assemble_all(wanted, fetch, decrypted)
    for path, damage in sorted(refused.items()):
        session.listen(
            Event(
                "warning",
                path,
                detail=f"{session.paths.to_local(path)}: object {damage.object_path} "
                f"{damage.why}; left as it is",
            )
        )
    return set(refused)


def _apply_pull(
    session: Session,
    assembler: Assembler,
    actions: list[PullAction],
    visible: list[PullAction],
    summary: Summary,
    fresh: bool,
    scope: Scope,
) -> None:
    index = 0
    try:
        for action in actions:
            if isinstance(action, Adopt):
                # The stat the scan hashed, not the file's now: bytes written since then are
                # a local change the next scan must read.
                local = session.local.get(action.path)
                known = local is not None and not action.version.deleted
                session.state.files[action.path] = Entry(
                    action.version,
                    local.size if known else None,
                    local.mtime_ns if known else None,
                    publish=action.publish,
                )
                continue
            index += 1
            try:
                _apply_one(session, assembler, action, index, len(visible), summary, fresh)
            except OSError as error:
                if error.errno in NO_SPACE:
                    raise
                # One path that cannot be written never blocks the others.
                session.left.add(action.path)
                session.listen(
                    Event(
                        "warning",
                        action.path,
                        detail=f"{session.paths.to_local(action.path)}: cannot be written "
                        f"({error.strerror}); left as it is",
                    )
                )
        if scope == EVERYTHING and not summary.refused:
            session.state.rebuilding = False  # every path settled once: it knows its bases
            if not session.left:
                _settled(session, summary.pending)
    finally:
        if visible:
            sync_disks()  # what was written is on disk before the state says so
        session.state.last_pull = now_iso()
        session.save()


def _apply_one(
    session: Session,
    assembler: Assembler,
    action: PullAction,
    index: int,
    total: int,
    summary: Summary,
    fresh: bool,
) -> None:
    local = session.paths.to_local(action.path)
    stale = not (isinstance(action, Resolve) and action.pending_yields)  # else: a copy
    stale = stale and not session.state_known and not is_append_only(action.path)
    if stale and action.path not in session.state.files and action.path in session.local:
        session.listen(
            Event(
                "warning",
                action.path,
                detail=f"{local}: no record of what this copy was based on (the state lost, "
                "or a home restored from a backup): the newer version from the remote takes "
                "its place; this copy is kept in trash/",
            )
        )
    if isinstance(action, Trash):
        if _apply_trash(session, action.path, action.version):
            summary.deleted += 1
            session.listen(Event("delete", action.path, 0, index, total))
        return
    for moved in make_way(session.ws.claude, local, session.ws.trash, session.folders_seen):
        session.listen(
            Event(
                "warning",
                action.path,
                detail=f"{moved} was in the way of {local} (a file became a folder or the "
                "reverse on another device); kept in trash/",
            )
        )
    if isinstance(action, Download):
        if _apply_download(session, assembler, action.path, action.version, fresh):
            summary.downloaded += 1
            session.listen(Event("download", action.path, action.version.size, index, total))
    else:
        _apply_resolve(session, assembler, action, summary, fresh)


def _skip_changed(session: Session, path: str) -> None:
    session.left.add(path)
    session.listen(
        Event("warning", path, detail=f"{path} changed during the pull; left as it is for now")
    )


def _apply_written(session: Session, path: str, written: Written, doing: str) -> bool:
    """Tell what else happened while a pull wrote `path`; False when it left the file as it
    is (it had changed since the scan: nothing to record)."""
    if not written.applied:
        _skip_changed(session, path)
        return False
    local = session.paths.to_local(path)
    if written.late is not None:
        session.listen(
            Event(
                "warning",
                path,
                detail=f"{local} was written to while the pull {doing} it; the file with "
                f"what was written is kept in {written.late}",
            )
        )
    if written.raced:
        session.listen(
            Event(
                "warning",
                path,
                detail=f"{local} was appended to while the pull extended it; both are in the "
                "file, which the next push sends",
            )
        )
    return True


def _apply_download(
    session: Session, assembler: Assembler, path: str, version: Version, fresh: bool
) -> bool:
    """Extend the local file when it is a prefix of `version`, else replace it (the old one
    kept in trash/); record `version` unless the file is not exactly it."""
    assembled = assembler.get(path, version)
    target, seen = session.target(path), session.local.get(path)
    mtime_ns = None if fresh else version.mtime_ns
    if assembled.tail:
        assert seen is not None  # only a file here that holds the first segments grows
        written = extend_file(
            assembled.file, target, seen, mtime_ns, session.ws.trash, session.paths.to_local(path)
        )
    else:
        written = write_file(
            assembled.file,
            target,
            seen,
            mtime_ns,
            version.mode,
            session.ws.trash,
            session.paths.to_local(path),
            prepared=assembled.beside,
        )
    assembler.applied(path, version)
    if not _apply_written(session, path, written, "replaced"):
        return False
    session.state.files[path] = Entry(version, written.size, written.mtime_ns)
    return True


def _apply_trash(session: Session, path: str, version: Version) -> bool:
    written = delete_file(
        session.target(path),
        session.local.get(path),
        session.ws.trash,
        session.paths.to_local(path),
    )
    if not _apply_written(session, path, written, "deleted"):
        return False
    session.record(path, version, None)
    return True


def _apply_resolve(
    session: Session, assembler: Assembler, action: Resolve, summary: Summary, fresh: bool
) -> None:
    """Apply `resolve`, counting what it wrote into `summary`."""
    target = session.target(action.path)
    local = session.local.get(action.path)

    def content(version: Version) -> Path:
        if local is not None and (version.sha256, version.size) == (local.sha256, local.size):
            return target
        return assembler.path_of(action.path, version)

    def is_prefix(shorter: Version, longer: Version) -> bool:
        return prefix_sha256(content(longer), shorter.size) == shorter.sha256

    resolution = resolve(
        action.path, action.options, action.pending, is_prefix, action.pending_yields
    )
    if not session.unchanged_since_scan(action.path, target):
        _skip_changed(session, action.path)
        return
    local_mode = _mode_of(target)
    for loser in resolution.losers:
        name = conflict_name(
            session.paths.to_local(action.path),
            loser.mtime_ns,
            session.ws.config.device_name
            if loser is action.pending
            else session.remote().device_name(loser.device),
        )
        copy_target = free_copy_name(session.ws.claude / name, content(loser))
        if copy_target is None:
            continue
        name = copy_target.relative_to(session.ws.claude).as_posix()
        copy_mode = _narrowest(loser.mode, local_mode)
        os.replace(copy_beside(content(loser), copy_target, loser.mtime_ns, copy_mode), copy_target)
        summary.conflicts += 1
        summary.pending.append(name)
        session.listen(Event("conflict", action.path, detail=name))
    remote_best = max(action.options, key=remote_rank)
    previous = session.state.files.get(action.path)
    base_vector = resolution.vector.merge(previous.base.vector if previous else VersionVector())
    winner = resolution.winner
    trash, relative = session.ws.trash, session.paths.to_local(action.path)
    if winner is None:
        source = assembler.downloads / "merged"
        merged = merge_lines(action.path, [content(v) for v in resolution.merged_inputs], source)
        mode = _narrowest(*(version.mode for version in resolution.merged_inputs))
        written = write_file(
            source, target, local, None, mode, trash, relative, keep_replaced=False
        )
        if not _apply_written(session, action.path, written, "merged"):
            return
        # No stat recorded: the next scan reads the merge, which the next push sends.
        session.state.files[action.path] = Entry(remote_best.with_vector(base_vector))
        summary.downloaded += 1
        session.listen(Event("download", action.path, merged, detail="merged"))
    elif resolution.keep_local:
        session.state.files[action.path] = Entry(remote_best.with_vector(base_vector))
    elif winner.deleted:
        written = delete_file(target, local, trash, relative)
        if not _apply_written(session, action.path, written, "deleted"):
            return
        session.record(action.path, winner.with_vector(base_vector), None)
    elif local is not None and (winner.sha256, winner.size) == (local.sha256, local.size):
        session.state.files[action.path] = Entry(
            winner.with_vector(base_vector), local.size, local.mtime_ns
        )
    else:
        mtime_ns = None if fresh else winner.mtime_ns
        written = write_file(content(winner), target, local, mtime_ns, winner.mode, trash, relative)
        if not _apply_written(session, action.path, written, "replaced"):
            return
        session.state.files[action.path] = Entry(
            winner.with_vector(base_vector), written.size, written.mtime_ns
        )
        summary.downloaded += 1
        session.listen(Event("download", action.path, winner.size))
    if not resolution.keep_local and len(action.options) > 1:
        session.state.files[action.path].publish = True


def _narrowest(*modes: int | None) -> int | None:
    """The permission bits every known mode grants (None: none is known): a file made from
    several, or beside another, is open to no one that one of them keeps out."""
    known = [mode for mode in modes if mode is not None]
    return functools.reduce(operator.and_, known) if known else None


def _mode_of(file: Path) -> int | None:
    """The permission bits of `file`, None when there is none."""
    try:
        return file.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
