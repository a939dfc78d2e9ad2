"""devices forget: retire a device, removing its view from the remote.

Once a device's view is gone, no version it published is needed any more, and `prune`
deletes the objects only it named. So a device is forgotten only when it holds the only copy
of no live file: each live version in its view is the same content as, or superseded by, a
version another device published. A version this device pulled counts too: it publishes
what it holds of those first, as a push would (only clean copies, the file here exactly as
pulled, so that what it publishes is on the remote already).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ClaudeSyncError
from ..files import private_folder
from ..scope import Scope, device_id
from ..session import Listener, Session
from ..versions import Version
from ..workspace import Workspace
from .push import publish_entry

NAMED = 3  # paths a refusal names


@dataclass
class Forgotten:
    device_id: str
    name: str
    published: int  # paths this device published first: their only other copy was there


def only_copies(
    versions: Mapping[str, Version], others: Iterable[Mapping[str, Version]]
) -> list[str]:
    """The paths of `versions` (one device's view) whose live version none of `others`
    holds: no other version is the same content or supersedes it."""
    others = list(others)
    return sorted(
        path
        for path, version in versions.items()
        if not version.deleted
        and not any(path in other and _covers(other[path], version) for other in others)
    )


def _covers(other: Version, version: Version) -> bool:
    return version.vector <= other.vector or (not other.deleted and other.same_content(version))


def forget(ws: Workspace, name: str, listen: Listener) -> Forgotten:
    """Remove the view of the device `name` (a name or id, as `devices` shows them) from
    the remote; ClaudeSyncError while it holds the only copy of a live file, or when it is
    this device (whose next push would publish its view again)."""
    if name in (ws.config.device_id, ws.config.device_name):
        raise ClaudeSyncError(
            f"{name} is this device: run `claude-sync devices forget {name}` on another one"
        )
    session = Session(ws, listen)
    view = session.remote()
    target = device_id(view, name)
    retired = view.manifests[target]
    published = {device: m.files for device, m in view.manifests.items() if device != target}
    alone = only_copies(retired.files, published.values())
    present = view.known_segments()
    held = {
        path: entry.base
        for path, entry in session.state.files.items()
        if path in alone and not entry.publish and _clean(session, path, entry.base, present)
    }
    still = only_copies({path: retired.files[path] for path in alone}, [held])
    if still:
        shown = ", ".join(session.paths.to_local(path) for path in still[:NAMED])
        more = ", …" if len(still) > NAMED else ""
        raise ClaudeSyncError(
            f"{retired.device_name} [{target}] holds the only copy of {len(still)} "
            f"{'file' if len(still) == 1 else 'files'} ({shown}{more}): run "
            f"`claude-sync sync` here, then forget it"
        )
    if alone:
        staging = ws.staging / "forget"
        shutil.rmtree(staging, ignore_errors=True)
        private_folder(staging)
        try:
            publish_entry(session, Scope(paths=frozenset(alone)), staging, present)
            session.save()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    ws.remote.delete_journal(target)
    return Forgotten(target, retired.device_name, len(alone))


def _clean(session: Session, path: str, base: Version, present: set[str]) -> bool:
    """Whether the file here is exactly `base` (as pulled, not changed since), and every
    object of `base` is `present` on the remote: publishing it then names nothing missing."""
    local = session.local.get(path)
    return (
        local is not None
        and not base.deleted
        and (local.sha256, local.size) == (base.sha256, base.size)
        and all(segment.sha256 in present for segment in base.segments)
    )
