"""pull: fetch and apply what changed elsewhere.

Fetch the manifests that changed (one rclone call), plan, fetch every needed object in one
call, assemble and verify every file in staging/ (nothing in the Claude folder changes until
all of them check out), then for each path copy it beside the target, fsync, set the
recorded mtime and rename it into place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..assemble import Assembler, Needed
from ..claude_folder import conflict_name, copy_beside, free_copy_name, keep_in_trash, merge_history
from ..files import private_folder
from ..manifest import now_iso
from ..pathmap import temporary_name
from ..plan import (
    Adopt,
    Download,
    PullAction,
    Resolve,
    Trash,
    decide_pull,
    remote_rank,
    resolve,
)
from ..scan import prefix_sha256
from ..session import Event, Listener, Session, Summary
from ..state import Entry
from ..versions import Version, VersionVector
from ..workspace import Workspace


def plan_pull(session: Session) -> list[PullAction]:
    remote = session.remote().versions()
    actions: list[PullAction] = []
    for path in sorted(session.all_paths() | set(remote)):
        if not session.rules.synced(path):
            continue
        action = decide_pull(
            path,
            session.local.get(path),
            session.state.files.get(path),
            remote.get(path, []),
            session.device,
        )
        if action is not None:
            actions.append(action)
    return actions


def _trash_copy(session: Session, path: str, file: Path) -> None:
    """Keep the current local file in trash/ before a pull replaces or deletes it."""
    keep_in_trash(session.ws.trash, session.paths.to_local(path), file)


def _download_need(session: Session, path: str, version: Version) -> Needed:
    """What to fetch for `version`: when the unchanged local file already holds its leading
    segments (a transcript that grew elsewhere), only the new ones."""
    entry, local = session.state.files.get(path), session.local.get(path)
    if entry is None or local is None or entry.base.deleted or not entry.base.segments:
        return Needed(path, version)
    held = entry.base.segments
    unchanged = (local.sha256, local.size) == (entry.base.sha256, entry.base.size)
    if unchanged and version.segments[: len(held)] == held and len(version.segments) > len(held):
        return Needed(path, version, len(held), entry.base.sha256)
    return Needed(path, version)


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


def pull(ws: Workspace, listen: Listener, dry_run: bool = False) -> Summary:
    session = Session(ws, listen)
    summary = Summary()
    actions = plan_pull(session)
    for action in actions:
        if not isinstance(action, Adopt):
            session.target(action.path)
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
    try:
        wanted = _to_fetch(session, actions)
        names = {
            session.object_name(segment.sha256)
            for need in wanted
            for segment in need.version.segments[need.reused :]
        }
        if names:
            ws.remote.download_objects(downloads, sorted(names))
        assembler = Assembler(session, downloads)
        for need in wanted:
            assembler.assemble(need)
        _apply_pull(session, assembler, actions, visible, summary)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    return summary


def _apply_pull(
    session: Session,
    assembler: Assembler,
    actions: list[PullAction],
    visible: list[PullAction],
    summary: Summary,
) -> None:
    index = 0
    try:
        for action in actions:
            if isinstance(action, Adopt):
                file = session.target(action.path) if action.path in session.local else None
                session.record(action.path, action.version, file)
                session.state.files[action.path].publish = action.publish
                continue
            index += 1
            if isinstance(action, Download):
                if _apply_download(session, assembler, action.path, action.version):
                    summary.downloaded += 1
                    session.listen(
                        Event("download", action.path, action.version.size, index, len(visible))
                    )
            elif isinstance(action, Trash):
                if _apply_trash(session, action.path, action.version):
                    summary.deleted += 1
                    session.listen(Event("delete", action.path, 0, index, len(visible)))
            else:
                _apply_resolve(session, assembler, action, summary)
    finally:
        session.state.last_pull = now_iso()
        session.save()


def _skip_changed(session: Session, path: str) -> None:
    session.listen(
        Event("warning", path, detail=f"{path} changed during the pull; left as it is for now")
    )


def _apply_download(session: Session, assembler: Assembler, path: str, version: Version) -> bool:
    target = session.target(path)
    staged = assembler.path_of(version)
    temporary = copy_beside(staged, target, version.mtime_ns)
    if not session.unchanged_since_scan(path, target):
        temporary.unlink()
        _skip_changed(session, path)
        return False
    local = session.local.get(path)
    if local is not None and not (
        local.size <= version.size and prefix_sha256(staged, local.size) == local.sha256
    ):
        _trash_copy(session, path, target)
    os.replace(temporary, target)
    session.record(path, version, target)
    return True


def _apply_trash(session: Session, path: str, version: Version) -> bool:
    target = session.target(path)
    if not session.unchanged_since_scan(path, target):
        _skip_changed(session, path)
        return False
    if target.exists():
        _trash_copy(session, path, target)
        target.unlink()
    session.record(path, version, None)
    return True


def _apply_resolve(
    session: Session, assembler: Assembler, action: Resolve, summary: Summary
) -> None:
    """Apply `resolve`, counting what it wrote into `summary`."""
    target = session.target(action.path)
    local = session.local.get(action.path)

    def content(version: Version) -> Path:
        if local is not None and (version.sha256, version.size) == (local.sha256, local.size):
            return target
        return assembler.path_of(version)

    def is_prefix(shorter: Version, longer: Version) -> bool:
        return prefix_sha256(content(longer), shorter.size) == shorter.sha256

    resolution = resolve(action.path, action.options, action.pending, is_prefix)
    if not session.unchanged_since_scan(action.path, target):
        _skip_changed(session, action.path)
        return
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
        os.replace(copy_beside(content(loser), copy_target, loser.mtime_ns), copy_target)
        summary.conflicts += 1
        session.listen(Event("conflict", action.path, detail=name))
    remote_best = max(action.options, key=remote_rank)
    previous = session.state.files.get(action.path)
    base_vector = resolution.vector.merge(previous.base.vector if previous else VersionVector())
    winner = resolution.winner
    if winner is None:
        merged = merge_history([content(v) for v in resolution.merged_inputs])
        temporary = target.with_name(temporary_name())
        temporary.write_bytes(merged)
        os.replace(temporary, target)
        session.state.files[action.path] = Entry(remote_best.with_vector(base_vector))
        summary.downloaded += 1
        session.listen(Event("download", action.path, len(merged), detail="merged"))
    elif resolution.keep_local:
        session.state.files[action.path] = Entry(remote_best.with_vector(base_vector))
    elif winner.deleted:
        if target.exists():
            _trash_copy(session, action.path, target)
            target.unlink()
        session.record(action.path, winner.with_vector(base_vector), None)
    elif local is not None and (winner.sha256, winner.size) == (local.sha256, local.size):
        session.record(action.path, winner.with_vector(base_vector), target)
    else:
        temporary = copy_beside(content(winner), target, winner.mtime_ns)
        if local is not None:
            _trash_copy(session, action.path, target)
        os.replace(temporary, target)
        session.record(action.path, winner.with_vector(base_vector), target)
        summary.downloaded += 1
        session.listen(Event("download", action.path, winner.size))
    if not resolution.keep_local and len(action.options) > 1:
        session.state.files[action.path].publish = True
